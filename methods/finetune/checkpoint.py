"""``finetune``: the one path every fine-tuning method takes.

Contract.  A fine-tuning method has ``name`` (str), ``train`` (TrainConfig) and
``plan(lm, data, cfg, seed) -> Plan``, which reads every data file through ``data.path(rel)``
(``data`` is a ``RecordingDataRoot``) and returns the objective and the training examples;
``prepare`` is ``finetune(self, loaded, ctx)``.

``finetune``:
1. ``cfg = method.train.resolve(ctx.budget)``; ``torch.manual_seed(ctx.seed)``; the method's
   plan is built (it runs even when a checkpoint exists: the key depends on what it reads);
2. ``cfg.check_epochs`` refuses a schedule that passes over a small corpus too often (``paper``);
3. the checkpoint key is ``stable_hash`` of (base model identity, method config with the resolved
   budget, the sha256 of every file the plan opened, seed, code version): a plan that reads one
   more file gets another key, with no hand-kept file list to drift;
4. ``<cache>/checkpoints/<key>`` is a ``bench.io.cached_dir``: when it exists and matches its
   sha256 manifest it is loaded and no training runs (a folder that fails verification is
   retrained, logged; concurrent jobs train it once); otherwise a deep copy of the model (the
   caller's ``loaded.model`` is never modified) is trained by ``fit`` inside ``plan.hooks``
   (e.g. dropout modules, removed on exit), LoRA adapters are merged, and the weights
   (safetensors) + tokenizer + ``taxbench_train.json`` land in the folder atomically;
5. the model evaluated is always the one loaded back from that folder; a folder that does not
   load raises ``TrainingError`` (never a silent fall-back to the base model).

Recorded in the method info (result file): the loss of every step (``method/loss_curve``, one
list per loss part), the number of training examples, unique training tokens and epochs, and
first/last/min of each loss part (``bench.tracking`` logs the curve to wandb from the result file).
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch

from bench.data import DataRoot
from bench.errors import TrainingError
from bench.engine.hf_lm import HFScoringLM
from bench.io import cached_dir, stable_hash
from bench.api.model import DTYPES, LoadedModel
from bench.engine.models import load_tokenizer
from bench.api import Debiased, MethodContext
from methods.finetune.config import TrainConfig
from methods.finetune.loop import Objective, fit, summarize

log = logging.getLogger(__name__)
RECORD = "taxbench_train.json"


@dataclass
class Plan:
    """What a method hands ``finetune`` to train."""

    objective: Objective
    items: list  # training examples (token id lists, or contrastive sources)
    tokens: int | None = None  # unique training tokens (None: sum of len(item), items being token-id lists)
    counts: dict[str, int] = field(default_factory=dict)  # example counts -> info "method/n_<name>"
    notes: dict[str, Any] = field(default_factory=dict)  # other facts -> info "method/<name>"
    train_head: bool = False  # with LoRA, also train the output embedding (NC3's gradient reaches only it)
    hooks: Callable[[torch.nn.Module], ContextManager] | None = None  # training-only modules (removed on exit)


class RecordingDataRoot:
    """The data root as a plan sees it: ``path(rel)`` as ``DataRoot.path``, recording ``rel``;
    ``checksums()`` gives the sha256 of exactly the files opened through it."""

    def __init__(self, data: DataRoot):
        self._data = data
        self._read: set[str] = set()

    def path(self, rel: str) -> Path:
        local = self._data.path(rel)
        self._read.add(rel)
        return local

    @property
    def files(self):
        """The declared files (the manifest: listing it reads nothing)."""
        return self._data.files

    def checksums(self) -> dict[str, str]:
        sums = self._data.checksums()
        return {rel: sums[rel] for rel in sorted(self._read)}


def method_config(method: Any, train: TrainConfig) -> dict[str, Any]:
    return {"class": type(method).__name__, **asdict(method), "train": asdict(train)}


def checkpoint_key(method: Any, loaded: LoadedModel, ctx: MethodContext, checksums: dict[str, str]) -> str:
    """stable_hash of (base identity, method config under ctx.budget, data checksums, seed, code version)."""
    return stable_hash({"base": loaded.identity, "method": method_config(method, method.train.resolve(ctx.budget)),
                        "budget": ctx.budget, "data": checksums, "seed": ctx.seed, "code": ctx.code_version})


def add_lora(model: Any, cfg: TrainConfig, train_head: bool) -> Any:
    """Wrap ``model`` with LoRA adapters; ``train_head`` also trains the output embedding."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_targets, task_type="CAUSAL_LM")
    wrapped = get_peft_model(model, lora)
    if train_head:
        wrapped.get_output_embeddings().weight.requires_grad_(True)
    return wrapped


def save_checkpoint(folder: Path, model: Any, tokenizer: Any, record: dict[str, Any]) -> None:
    """Weights (safetensors only) + tokenizer + the training record into the (temp) ``folder``."""
    safe = "safe_serialization" in inspect.signature(model.save_pretrained).parameters  # transformers < 5
    model.save_pretrained(folder, **({"safe_serialization": True} if safe else {}))
    tokenizer.save_pretrained(folder)
    if not list(folder.glob("*.safetensors")) or list(folder.glob("*.bin")):
        raise TrainingError(f"saving the checkpoint {folder} did not produce safetensors weights only")
    (folder / RECORD).write_text(json.dumps(record, indent=1, default=str) + "\n")


def load_checkpoint(folder: Path, loaded: LoadedModel, identity: str) -> LoadedModel:
    """The trained model of ``folder`` as a LoadedModel; any failure raises TrainingError."""
    from transformers import AutoModelForCausalLM

    try:
        tokenizer = load_tokenizer(folder, loaded.config)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[loaded.config.dtype], use_safetensors=True)
    except Exception as exc:  # noqa: BLE001 - any load failure must stop the run
        raise TrainingError(f"cannot load the trained checkpoint {folder}: {exc}; delete the folder to retrain") from exc
    model.to(loaded.device).eval()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, config=loaded.config, identity=identity, device=loaded.device)


def _train(plan: Plan, loaded: LoadedModel, cfg: TrainConfig, seed: int, desc: str) -> tuple[Any, dict[str, Any]]:
    model = copy.deepcopy(loaded.model)
    with plan.hooks(model) if plan.hooks else contextlib.nullcontext():
        trainee = add_lora(model, cfg, plan.train_head) if cfg.lora else model
        result = fit(trainee, plan.objective, plan.items, cfg, seed, desc=desc)
        if cfg.lora:
            model = trainee.merge_and_unload()
    return model, result


def finetune(method: Any, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
    """Train (or reuse) ``method``'s checkpoint for ``loaded`` and return it wrapped (module docstring)."""
    cfg = method.train.resolve(ctx.budget)
    data = RecordingDataRoot(ctx.data)
    torch.manual_seed(ctx.seed)
    plan = method.plan(HFScoringLM(loaded), data, cfg, ctx.seed)
    tokens = plan.tokens if plan.tokens is not None else sum(len(x) for x in plan.items)
    cfg.check_epochs(len(plan.items), tokens, ctx.budget)
    checksums = data.checksums()
    key = checkpoint_key(method, loaded, ctx, checksums)

    def train(tmp: Path) -> None:
        start = time.perf_counter()
        model, result = _train(plan, loaded, cfg, ctx.seed, f"{method.name} ({loaded.config.name})")
        seconds = time.perf_counter() - start
        record = {"key": key, "method": method.name, "base": loaded.identity, "budget": ctx.budget,
                  "config": method_config(method, cfg), "data": checksums, "seed": ctx.seed,
                  "code_version": ctx.code_version, "steps": result["steps"], "train_seconds": round(seconds, 2),
                  "examples": len(plan.items), "unique_tokens": tokens,
                  "epochs": round(cfg.epochs_over(len(plan.items)), 6),
                  "summary": summarize(result["history"]), "history": result["history"],
                  "counts": plan.counts, "notes": plan.notes}
        save_checkpoint(tmp, model, loaded.tokenizer, record)

    folder = cached_dir(Path(ctx.cache_dir) / "checkpoints" / key, train, f"{method.name} checkpoint")
    record = json.loads((folder / RECORD).read_text())  # verified: as written
    identity = f"{loaded.identity}+{method.name}@{key}"
    trained = load_checkpoint(folder, loaded, identity)
    info = {"method/checkpoint_key": key, "method/identity": identity, "method/budget": ctx.budget,
            "method/steps": record["steps"], "method/train_seconds": record["train_seconds"],
            "method/train_examples_drawn": record["steps"] * cfg.batch_size * cfg.grad_accum,
            "method/unique_train_tokens": record["unique_tokens"], "method/epochs": record["epochs"],
            "method/loss_curve": {k: [round(v, 6) for v in vs] for k, vs in record["history"].items()},
            **{f"method/{k}": v for k, v in record["summary"].items()},
            **{f"method/n_{k}": v for k, v in record["counts"].items()},
            **{f"method/{k}": v for k, v in record["notes"].items()}}
    return Debiased(lm=HFScoringLM(trained, name=f"{loaded.config.name}+{method.name}"), info=info)
