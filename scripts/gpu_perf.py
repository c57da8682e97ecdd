"""Helpers of scripts/gpu_perf.sh (the prepared GPU throughput check): what it carries to the GPU machine, and a
rehearsal of its command on this machine.

    python scripts/gpu_perf.py data SRC DST      # copy bench.perf's data files, checksums verified
    python scripts/gpu_perf.py tokenizer DST     # SmolLM2's tokenizer + a 1-layer width-8 random Llama (a `dir` model)
    python scripts/gpu_perf.py trim WHEEL        # drop lm_eval/tasks/* from lm-eval's wheel (8.7 of its 9.1 MB)
    python scripts/gpu_perf.py pack SRC ARCHIVE  # SRC's data/ and smollm2-tokenizer/ as one .tar.xz
    python scripts/gpu_perf.py size CARRY...     # bytes that travel: the working tree plus the carried paths
    python scripts/gpu_perf.py sim SITE -- ARGS  # python ARGS with the packages the GPU machine lacks importable
                                                 # only from SITE (where the carried wheels were installed)

The GPU machine (the `nvidia-h200` kind) has torch, transformers, tokenizers, accelerate, numpy, pyyaml, jinja2,
requests and tqdm, but none of ``MISSING``; nothing can be downloaded there.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import importlib.abc
import importlib.machinery
import io
import runpy
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PERF_FILES = ("truthfulqa/v1/mc_task.json", "bias_bench/crows/crows_pairs_anonymized.csv",
              "realtoxicityprompts/decodingtrust_toxic.jsonl")  # what bench.perf's three GPU workloads read
MISSING = ("lm_eval", "hydra", "omegaconf", "antlr4", "datasets", "evaluate", "dill", "sqlitedict", "pytablewriter",
           "word2number", "more_itertools", "rouge_score", "gguf")  # top-level modules absent on the GPU machine
LIMIT = 64 * 2**20  # bytes the device tool carries per call


def copy_data(src: str, dst: Path) -> None:
    """Copy ``PERF_FILES`` from the data root ``src`` ("": the default root) to ``dst``, each checked against
    bench/data/files.json."""
    from bench.data import DataRoot

    for rel in PERF_FILES:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DataRoot(src or None, download=False).path(rel), dst / rel)
        DataRoot(dst, download=False).path(rel)  # raises on a checksum mismatch


def write_tokenizer(dst: Path) -> None:
    """SmolLM2's tokenizer (tiny-random's, i.e. the converted smollm2-135m GGUF's) and a 1-layer, width-8 random
    Llama of its vocabulary in bf16 (0.8 MB), so that the folder loads, and hashes, as a ``source: dir`` model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.config import load_named

    tokenizer = load_named("tiny-random").tokenizer
    config = LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tokenizer), max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    shutil.rmtree(dst, ignore_errors=True)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(dst)
    tokenizer.save_pretrained(dst)


def trim_wheel(path: Path, drop: str = "lm_eval/tasks/") -> None:
    """Rewrite the wheel without the files under ``drop`` (its ``__init__.py`` kept), RECORD regenerated."""
    with zipfile.ZipFile(path) as src:
        names = [n for n in src.namelist() if not n.startswith(drop) or n == drop + "__init__.py"]
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        files = {n: src.read(n) for n in names if n != record and not n.endswith("/")}
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([record, "", ""])
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in files.items():
            dst.writestr(name, data)
        dst.writestr(record, rows.getvalue())
    tmp.replace(path)


def pack(src: Path, archive: Path) -> None:
    """``src/data`` and ``src/smollm2-tokenizer`` as one xz tar whose members are ``.perf/...`` paths."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:xz") as tar:
        for sub in ("data", "smollm2-tokenizer"):
            tar.add(src / sub, arcname=f".perf/{sub}")


def tree_bytes(carry: list[str]) -> tuple[int, int]:
    """(bytes of the tracked and untracked-unignored files, bytes of the carried paths)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    tree = sum((REPO / f).stat().st_size for f in listed if f and (REPO / f).is_file())
    carried = 0
    for c in carry:
        p = REPO / c
        carried += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return tree, carried


class Block(importlib.abc.MetaPathFinder):
    """Lets the ``MISSING`` top-level modules be imported from ``site`` alone, as on the GPU machine."""

    def __init__(self, site: str):
        self.site = site

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in MISSING or "." in fullname:
            return None  # submodules are found on their parent's __path__, which is under site
        spec = importlib.machinery.PathFinder.find_spec(fullname, [self.site])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} (absent on the GPU machine)", name=fullname)
        return spec


def simulate(site: str, argv: list[str]) -> None:
    """Run ``python argv`` (``-m module args`` or ``script args``) with ``Block(site)`` first on the meta path."""
    sys.meta_path.insert(0, Block(site))
    sys.path.insert(0, site)
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    sys.path.insert(0, str(REPO))
    if command == "data":
        copy_data(args[0], Path(args[1]))
    elif command == "tokenizer":
        write_tokenizer(Path(args[0]))
    elif command == "trim":
        trim_wheel(Path(args[0]))
    elif command == "pack":
        pack(Path(args[0]), Path(args[1]))
    elif command == "size":
        tree, carried = tree_bytes(args)
        total = tree + carried
        print(f"travels: working tree {tree / 2**20:.1f} MiB + carried {' '.join(args)} {carried / 2**20:.1f} MiB "
              f"= {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} MiB" + ("" if total <= LIMIT else "  OVER THE LIMIT"))
        sys.exit(total > LIMIT)
    elif command == "sim":
        simulate(args[0], args[2:] if args[1:2] == ["--"] else args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
