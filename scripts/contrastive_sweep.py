"""The contrastive sweep on smollm2-135m (results/contrastive_sweep.md): lr x loss form x LoRA at the
cpu budget, each scored on WikiText-2 perplexity as the default suite does (n=10, max_chars=2000).

    PYTHONPATH=. python scripts/contrastive_sweep.py NAME [NAME ...]   # one JSON line per configuration -> stdout

``SWEEP_STEPS``/``SWEEP_BATCH``/``SWEEP_SEQ_LEN`` shrink the budget below the cpu budget (the machine
the committed table was measured on was shared by ~8 jobs: ~1/7 of a core each).

Each line: the configuration, its perplexity, and the mean contrastive / CE loss of its first and
last 5 steps (from the checkpoint's training record).  ``base`` scores the untrained model.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from statistics import mean

from bench.data import DataRoot
from bench.engine.hf_lm import HFScoringLM
from bench.config import load_named
from bench.api import MethodContext
from bench.tasks.perplexity import Perplexity
from methods.contrastive import Contrastive
from methods.training import RECORD

CONFIGS = {  # name: (scaling, lora, lr)
    "const-full-5e-5": ("constant", False, 5e-5),
    "const-full-2e-5": ("constant", False, 2e-5),
    "const-full-5e-4": ("constant", False, 5e-4),
    "ema-full-5e-5": ("ema", False, 5e-5),
    "const-lora-5e-4": ("constant", True, 5e-4),
    "ema-lora-5e-4": ("ema", True, 5e-4),
}


def main(names: list[str]) -> None:
    data = DataRoot(Path(os.environ["TAXBENCH_DATA"]), download=False)
    loaded = load_named("smollm2-135m")
    ppl = Perplexity(n=10, max_chars=2000)
    cache = Path(os.environ.get("SWEEP_CACHE", tempfile.mkdtemp(prefix="contrastive_sweep_")))
    for name in names:
        row: dict = {"name": name}
        if name == "base":
            lm = HFScoringLM(loaded)
        else:
            scaling, lora, lr = CONFIGS[name]
            method = Contrastive(scaling=scaling)
            method.train.lr, method.train.lora = lr, lora
            for env, name_ in (("SWEEP_STEPS", "max_steps"), ("SWEEP_BATCH", "batch_size"), ("SWEEP_SEQ_LEN", "seq_len"),
                               ("SWEEP_WARMUP", "warmup_steps")):
                if env in os.environ:
                    setattr(method.train, name_, int(os.environ[env]))
            debiased = method.prepare(loaded, MethodContext(data, cache, 0, "sweep"))
            lm = debiased.lm
            record = json.loads((cache / "checkpoints" / debiased.info["method/checkpoint_key"] / RECORD).read_text())
            hist = record["history"]
            row.update(scaling=scaling, lora=lora, lr=lr, steps=record["steps"], batch=method.train.batch_size,
                       seq_len=method.train.seq_len, train_seconds=record["train_seconds"],
                       **{f"{k}_first5": round(mean(hist[k][:5]), 4) for k in ("cl", "ce", "loss")},
                       **{f"{k}_last5": round(mean(hist[k][-5:]), 4) for k in ("cl", "ce", "loss")},
                       sources=record["counts"]["train_sources"])
        row["ppl"] = round(ppl.evaluate(lm, data).metrics["perplexity/wikitext2"], 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
