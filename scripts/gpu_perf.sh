#!/usr/bin/env bash
# The prepared GPU throughput check (issue 20, item 6): `python -m bench.perf --device cuda --model llama3-1b-shape`,
# i.e. taxbench against lm-eval's HFLM on TruthfulQA and CrowS-Pairs requests and against a per-prompt `generate`
# loop when sampling, with tokens/s and model FLOP utilisation, on a random bf16 model of Llama-3.2-1B's shapes.
#
#   scripts/gpu_perf.sh prepare   # here (network, data): wheels -> .whl/, data + tokenizer -> .perf/ and
#                                 # .perfpack/perf.tar.xz; prints the device tool's `run` call and what travels
#   scripts/gpu_perf.sh check     # here: the device command on CPU with a shrunken shape, the packages the GPU
#                                 # machine lacks importable only from the carried wheels
#   scripts/gpu_perf.sh run       # on the GPU machine (the `run` call's command), from the repo root
#
# The GPU machine has torch, transformers and accelerate but no network and none of lm-eval, hydra-core, omegaconf
# (antlr4): those travel as wheels (pure Python; lm-eval's 15,500 task files left out).  The data root and the
# converted-GGUF cache do not travel: bench.perf's three data files and SmolLM2's tokenizer (conf/model/
# smollm2-tokenizer.yaml) go in .perfpack/perf.tar.xz, unpacked there into .perf/.  All three folders are in
# .gitignore.  Environment for prepare and check: PY (default .venv/bin/python, else python3), TAXBENCH_DATA
# (prepare's data source; unset: bench.data's default root).
set -euo pipefail
cd "$(dirname "$0")/.."

# TruthfulQA questions, CrowS pairs, sampling prompts (one batch of 32 x k=25), StereoSet (unused).  Estimate:
# TruthfulQA 1,474 requests / 294k tokens = 5.7e14 FLOPs of work (+1.5e14 for lm-eval's LM head at every position),
# ~2 s a run for lm-eval at 30-40 % MFU; CrowS 2,000 requests / 33k tokens, launch-bound, < 1 s; sampling 32
# generate() calls x 20 steps at ~20 ms ~ 13 s a run, taxbench's 800-row batch ~1 s.  Warm-up + 3 runs each:
# ~1.5 min, plus ~1 min of pip install, imports and the random init of 1.24 B parameters on the CPU: ~2.5 min
# of a 7 min limit.  In bf16 MAXDIFF is up to ~1 nat (lm-eval's bf16 log-softmax); `run --dtype float32` compares
# like for like (2.8e-5 in the CPU check).
SIZES=(200 1000 32 1)
WHEELS=(lm_eval hydra-core omegaconf antlr4-python3-runtime)  # at the versions of PY's environment
CARRY='[".whl", ".perfpack"]'
TIMEOUT_S=420
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

prepare() {
  rm -rf .whl .perf .perfpack
  mkdir -p .whl
  local spec=() name
  for name in "${WHEELS[@]}"; do
    spec+=("$name==$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
  done
  echo "wheels: ${spec[*]}"
  for name in "${spec[@]}"; do  # the device README's recipe; antlr4 4.9.3 is an sdist only: build its pure wheel
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$name" 2>/dev/null \
      || "$PY" -m pip wheel -q --no-deps -w .whl "$name"
  done
  "$PY" scripts/gpu_perf.py trim .whl/lm_eval-*.whl
  "$PY" scripts/gpu_perf.py data "${TAXBENCH_DATA:-}" .perf/data
  HF_HUB_OFFLINE=1 "$PY" scripts/gpu_perf.py tokenizer .perf/smollm2-tokenizer
  "$PY" scripts/gpu_perf.py pack .perf .perfpack/perf.tar.xz
  ls -l .whl .perfpack
  "$PY" scripts/gpu_perf.py size .whl .perfpack || echo "too much travels: commit or ignore less, or carry less"
  echo "device call: run(command=\"bash scripts/gpu_perf.sh run\", carry=$CARRY, timeout_s=$TIMEOUT_S)"
}

check() {
  local site
  site=$(mktemp -d /tmp/gpu_perf_site.XXXXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
  "$PY" -m tarfile -e .perfpack/perf.tar.xz .
  TAXBENCH_DATA=$PWD/.perf/data HF_HUB_OFFLINE=1 WANDB_MODE=disabled "$PY" scripts/gpu_perf.py sim "$site" -- \
    -m bench.perf --only truthfulqa crows_pairs sampling --sizes 2 5 2 1 --runs 1 --device cpu \
    --model llama3-1b-shape --peak-tflops 1 --model-set 'random_config={hidden_size: 64, intermediate_size: 256,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 128256,
    max_position_embeddings: 4096, rope_theta: 500000.0, tie_word_embeddings: true}' "$@"
  rm -rf "$site"
}

run() {  # on the GPU machine
  set -o pipefail
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  python3 -m tarfile -e .perfpack/perf.tar.xz .
  export TAXBENCH_DATA=$PWD/.perf/data TAXBENCH_CACHE=/tmp/taxbench-cache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    WANDB_MODE=disabled PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.used --format=csv || true
  python3 -m bench.perf --device cuda --model llama3-1b-shape --only truthfulqa crows_pairs sampling \
    --sizes "${SIZES[@]}" --runs 3 "$@" 2>&1 | tee "${OUT:-/tmp}/gpu_perf.log"
  nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv || true
}

case "${1:-}" in
  prepare|check|run) "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
