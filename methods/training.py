"""The shared fine-tuning machinery of the training methods (CDA, Dropout, NC, contrastive).

- ``TrainConfig``: optimiser, schedule, batch and step budget, LoRA, precision.  Its fields are
  the CPU budget (minutes on smollm2-135m); ``smoke`` and ``paper`` hold the overrides that
  ``MethodContext.budget`` (``train_budget`` in the suite) selects.
- ``fit``: AdamW/Adam with linear warm-up then linear decay to 0, gradient accumulation and
  clipping, optional bf16 autocast (weights and optimiser state stay fp32), a tqdm bar with the
  loss, and a guard that raises ``TrainingError`` naming the step on a NaN/inf loss.
- ``finetune``: the one path every training method takes.  The checkpoint key is
  ``stable_hash`` of (base model identity, method config with the resolved budget, data file
  checksums, seed, code version).  When ``<cache>/checkpoints/<key>`` exists it is loaded and no
  training runs; otherwise the method's ``build`` makes a trainable deep copy of the model (the
  caller's ``loaded.model`` is never modified), ``fit`` trains it, LoRA adapters are merged, and
  the weights (safetensors) + tokenizer + ``taxbench_train.json`` land in the folder atomically.
  The model evaluated is always the one loaded back from that folder; a folder that does not
  load raises ``TrainingError`` (never a silent fall-back to the base model).
- Corpus helpers: ``read_corpus`` (sentences of plain-text files, WikiText's Moses spacing
  undone, headings and sentences with ``<unk>`` dropped) and ``pack_chunks`` (consecutive
  sentences packed into chunks of at most ``seq_len - 1`` tokens, across paragraphs).
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench.data import DataRoot
from bench.errors import ConfigError, TrainingError
from bench.engine.hf_lm import HFScoringLM
from bench.io import atomic_dir, atomic_write_json, stable_hash
from bench.engine.models import DTYPES, LoadedModel, load_tokenizer
from bench.api import Debiased, MethodContext
from bench.validate import check_fields

log = logging.getLogger(__name__)

BUDGETS = ("smoke", "cpu", "paper")
RECORD = "taxbench_train.json"
# bias-bench CDA/Dropout (GPT-2): 2,000 steps of 256 sequences (8 x 32 accumulated), lr 5e-5
PAPER_LM = {"max_steps": 2000, "grad_accum": 32, "seq_len": 128}
WIKITEXT_VALID = "wikitext2/tokens_v1/valid.txt"  # the default corpus (WikiText-2's train split is not available)
# Files of the suite's evaluation sets: never training data.
EVAL_PREFIXES = ("stereoset/", "crows_pairs_revised/", "bias_bench/crows", "bias_bench/seat", "truthfulqa/",
                 "realtoxicityprompts/", "wikitext2/tokens_v1/test", "wikitext2/raw_v1_hf_derived/", "lama/",
                 "rome_known_facts/", "winobias/", "bbq/", "bold/", "holistic_bias/")


@dataclass
class TrainConfig:
    """How to fine-tune (``method.train.*``).  The plain fields are the CPU budget: on smollm2-135m a
    step of 8 x 64 tokens costs ~10 s of CPU time (one thread, AVX2 EPYC), so 30 steps take ~3 min
    on two idle cores."""

    optimizer: str = "adamw"  # adamw or adam
    lr: float = 5e-5  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay (adamw only)
    warmup_steps: int = 0  # linear warm-up steps, then linear decay to 0 at the last step
    max_steps: int | None = 30  # optimiser steps (None: derived from epochs)
    epochs: float | None = None  # passes over the training examples, used when max_steps is None
    batch_size: int = 8  # examples per micro-batch (sequences, or contrastive sources)
    grad_accum: int = 1  # micro-batches per optimiser step
    seq_len: int = 64  # tokens per training sequence, sentence-start token included
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    dtype: str = "fp32"  # fp32, or bf16 (autocast; weights and optimiser state stay fp32)
    lora: bool = False  # train LoRA adapters (merged into the weights before saving) instead of all weights
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA alpha
    lora_dropout: float = 0.1  # LoRA dropout
    lora_targets: Any = "all-linear"  # peft target_modules: "all-linear" or a list of module names
    smoke: dict = field(default_factory=lambda: {"max_steps": 3, "batch_size": 2, "seq_len": 32})  # smoke overrides
    paper: dict = field(default_factory=dict)  # train_budget=paper overrides (the paper's values)

    def __post_init__(self) -> None:
        check_fields(self, "method.train")
        positive = {"lr": self.lr, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "lora_r": self.lora_r, "lora_alpha": self.lora_alpha}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"method.train.{name} must be > 0, got {value}")
        if self.optimizer not in ("adamw", "adam"):
            raise ConfigError(f"method.train.optimizer={self.optimizer!r} is not one of ['adamw', 'adam']")
        if self.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"method.train.dtype={self.dtype!r} is not one of ['fp32', 'bf16']")
        if self.seq_len < 8:
            raise ConfigError(f"method.train.seq_len must be >= 8, got {self.seq_len}")
        if self.max_steps is None and not self.epochs:
            raise ConfigError("method.train.max_steps is null, so method.train.epochs must be > 0")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"method.train.max_steps must be > 0 or null, got {self.max_steps}")
        if self.warmup_steps < 0 or self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ConfigError("method.train.warmup_steps, max_grad_norm and weight_decay must be >= 0")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"method.train.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        names = {f.name for f in fields(self)} - {"smoke", "paper"}
        for budget in ("smoke", "paper"):
            unknown = set(getattr(self, budget)) - names
            if unknown:
                raise ConfigError(f"method.train.{budget} has unknown option(s) {sorted(unknown)}; valid: {sorted(names)}")

    @classmethod
    def coerce(cls, value: Any) -> "TrainConfig":
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"method.train must be a mapping of training options, got {value!r}")
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"method.train has unknown option(s) {sorted(unknown)}")
        return cls(**value)

    def resolve(self, budget: str) -> "TrainConfig":
        """This config under ``budget`` (smoke, cpu or paper)."""
        if budget not in BUDGETS:
            raise ConfigError(f"train_budget={budget!r} is not one of {list(BUDGETS)}")
        return self if budget == "cpu" else replace(self, **getattr(self, budget))

    def steps(self, n_examples: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum)))


def check_method(method: Any) -> None:
    """Shared validation of the training methods' common fields."""
    check_fields(method, "method")
    method.train = TrainConfig.coerce(method.train)
    if method.nc3_weight < 0:
        raise ConfigError(f"method.nc3_weight must be >= 0, got {method.nc3_weight}")
    if method.max_examples is not None and method.max_examples <= 0:
        raise ConfigError(f"method.max_examples must be > 0 or null, got {method.max_examples}")


# ----------------------------------------------------------------------------- objective
class Objective(Protocol):
    """Loss of one micro-batch: ``(loss, {part: value})``; ``parameters()`` are extra trainable
    parameters besides the model's (e.g. a contrast head)."""

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def __call__(self, model: Any, items: list) -> tuple[torch.Tensor, dict[str, float]]: ...


# regularizer(hidden [B, T, H], next-token labels [B, T], mask [B, T], head weight [V, H]) -> scalar
Regularizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def collate(items: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and attention mask [B, T]."""
    width = max(len(x) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, x in enumerate(items):
        ids[row, :len(x)] = torch.tensor(x)
        mask[row, :len(x)] = 1
    return ids.to(device), mask.to(device)


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) over the non-padding targets.  logits [B, T, V]."""
    target_mask = mask[:, 1:].float()
    nll = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return (nll * target_mask.flatten()).sum() / target_mask.sum().clamp(min=1)


@dataclass
class LMObjective:
    """Causal-LM loss on token sequences, plus ``weight`` x an optional regularizer (NC3) of the
    last-layer hidden states."""

    pad_id: int
    regularizer: Regularizer | None = None
    weight: float = 0.0

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def __call__(self, model: Any, items: list) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask = collate(items, self.pad_id, model.device)
        use_reg = self.regularizer is not None and self.weight > 0
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=use_reg, use_cache=False)
        loss = lm_loss(out.logits, ids, mask)
        parts = {"lm": loss.item()}
        if use_reg:
            reg = self.regularizer(out.hidden_states[-1][:, :-1], ids[:, 1:], mask[:, 1:],
                                   model.get_output_embeddings().weight)
            parts["nc3"] = reg.item()
            loss = loss + self.weight * reg
        return loss, parts


# ------------------------------------------------------------------------------ training
def _batches(n: int, size: int, seed: int) -> Iterator[list[int]]:
    """Endless seeded shuffled passes over range(n), ``size`` indices at a time."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while True:
        while len(order) < size:
            order += rng.permutation(n).tolist()
        yield order[:size]
        order = order[size:]


def _optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _schedule(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor before optimiser step ``step`` (0-based): linear up, then down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def fit(model: Any, objective: Objective, items: list, cfg: TrainConfig, seed: int,
        desc: str = "training") -> dict[str, Any]:
    """Train ``model`` in place; returns {"steps", "history": {part: [value per step]}}.  A NaN/inf
    loss or gradient norm raises TrainingError naming the step."""
    if not items:
        raise TrainingError(f"{desc}: no training examples (check the method's data files and bias_type)")
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad] + list(objective.parameters())
    opt = _optimizer(params, cfg)
    total = cfg.steps(len(items))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, cfg.warmup_steps, total))
    batches = _batches(len(items), cfg.batch_size, seed)
    history: dict[str, list[float]] = {"loss": []}
    model.train()
    bar = tqdm(range(1, total + 1), desc=desc, leave=False, mininterval=2.0)
    for step in bar:
        opt.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for _ in range(cfg.grad_accum):
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
                loss, parts = objective(model, [items[i] for i in next(batches)])
            if not torch.isfinite(loss):
                raise TrainingError(f"{desc}: the loss became {loss.item()} at step {step} of {total}; no checkpoint "
                                    "was written (lower method.train.lr, or use method.train.dtype=fp32)")
            (loss / cfg.grad_accum).backward()
            for k, v in {"loss": loss.item(), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        if cfg.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            if not torch.isfinite(norm):
                raise TrainingError(f"{desc}: the gradient norm became {norm.item()} at step {step} of {total}; "
                                    "no checkpoint was written (lower method.train.lr)")
        opt.step()
        sched.step()
        for k, v in sums.items():
            history.setdefault(k, []).append(v)
        bar.set_postfix(loss=f"{sums['loss']:.4f}")
    model.eval()
    return {"steps": total, "history": history}


def summarize(history: dict[str, list[float]]) -> dict[str, float]:
    """first/last/min of the loss and of each loss part (rounded)."""
    out = {}
    for part, values in history.items():
        out.update({f"{part}_first": round(values[0], 6), f"{part}_last": round(values[-1], 6),
                    f"{part}_min": round(min(values), 6)})
    return out


# ------------------------------------------------------------------------ model handling
def trainable_copy(model: Any, config_overrides: dict[str, Any] | None = None) -> Any:
    """A deep copy of ``model`` to train (the original is left untouched).  With
    ``config_overrides``, the copy is rebuilt from the edited config so modules that read a
    value at construction (dropout rates) see it."""
    if not config_overrides:
        return copy.deepcopy(model)
    config = copy.deepcopy(model.config)
    for name, value in config_overrides.items():
        setattr(config, name, value)
    clone = type(model)(config).to(dtype=model.dtype, device=model.device)
    clone.load_state_dict(model.state_dict())
    return clone


def add_lora(model: Any, cfg: TrainConfig, train_head: bool) -> Any:
    """Wrap ``model`` with LoRA adapters; ``train_head`` also trains the output embedding
    (needed by NC3, whose gradient reaches only the head rows)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_targets, task_type="CAUSAL_LM")
    wrapped = get_peft_model(model, lora)
    if train_head:
        wrapped.get_output_embeddings().weight.requires_grad_(True)
    return wrapped


def save_checkpoint(folder: Path, model: Any, tokenizer: Any, record: dict[str, Any]) -> None:
    """Weights (safetensors only) + tokenizer + the training record, all or nothing."""
    with atomic_dir(folder) as tmp:
        safe = "safe_serialization" in inspect.signature(model.save_pretrained).parameters  # transformers < 5
        model.save_pretrained(tmp, **({"safe_serialization": True} if safe else {}))
        tokenizer.save_pretrained(tmp)
        if not list(tmp.glob("*.safetensors")) or list(tmp.glob("*.bin")):
            raise TrainingError(f"saving the checkpoint for {folder} did not produce safetensors weights only")
        atomic_write_json(tmp / RECORD, record)


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


# ------------------------------------------------------------------------------ the path
@dataclass
class Plan:
    """What a method hands ``finetune`` to train: a model copy, its objective and examples."""

    model: Any  # trainable copy of the base model
    objective: Objective
    items: list  # training examples (token id lists, or contrastive sources)
    counts: dict[str, int] = field(default_factory=dict)  # example counts -> info "method/n_<name>"
    notes: dict[str, Any] = field(default_factory=dict)  # other facts -> info "method/<name>"


def data_checksums(data: DataRoot, files: Iterable[str]) -> dict[str, str]:
    for rel in files:
        data.path(rel)
    sums = data.checksums()
    return {rel: sums[rel] for rel in sorted(set(files))}


def method_config(method: Any, train: TrainConfig) -> dict[str, Any]:
    return {"class": type(method).__name__, **asdict(method), "train": asdict(train)}


def checkpoint_key(method: Any, loaded: LoadedModel, ctx: MethodContext, checksums: dict[str, str]) -> str:
    """stable_hash of (base identity, method config under ctx.budget, data checksums, seed, code version)."""
    return stable_hash({"base": loaded.identity, "method": method_config(method, method.train.resolve(ctx.budget)),
                        "budget": ctx.budget, "data": checksums, "seed": ctx.seed, "code": ctx.code_version})


def finetune(method: Any, loaded: LoadedModel, ctx: MethodContext, files: list[str],
             build: Callable[[LoadedModel, TrainConfig], Plan]) -> Debiased:
    """Train (or reuse) ``method``'s checkpoint for ``loaded`` and return it wrapped (module docstring)."""
    cfg = method.train.resolve(ctx.budget)
    checksums = data_checksums(ctx.data, files)
    key = checkpoint_key(method, loaded, ctx, checksums)
    folder = Path(ctx.cache_dir) / "checkpoints" / key
    if (folder / RECORD).exists():
        log.info("%s: reusing checkpoint %s", method.name, folder)
    else:
        torch.manual_seed(ctx.seed)
        plan = build(loaded, cfg)
        model = plan.model
        if cfg.lora:
            model = add_lora(model, cfg, train_head=method.nc3_weight > 0)
        start = time.perf_counter()
        result = fit(model, plan.objective, plan.items, cfg, ctx.seed, desc=f"{method.name} ({loaded.config.name})")
        seconds = time.perf_counter() - start
        if cfg.lora:
            model = model.merge_and_unload()
        record = {"key": key, "method": method.name, "base": loaded.identity, "budget": ctx.budget,
                  "config": method_config(method, cfg), "data": checksums, "seed": ctx.seed,
                  "code_version": ctx.code_version, "steps": result["steps"], "train_seconds": round(seconds, 2),
                  "summary": summarize(result["history"]), "history": result["history"],
                  "counts": plan.counts, "notes": plan.notes}
        save_checkpoint(folder, model, loaded.tokenizer, record)
        del model, plan
    record = json.loads((folder / RECORD).read_text())
    identity = f"{loaded.identity}+{method.name}@{key}"
    trained = load_checkpoint(folder, loaded, identity)
    info = {"method/checkpoint_key": key, "method/identity": identity, "method/budget": ctx.budget,
            "method/steps": record["steps"], "method/train_seconds": record["train_seconds"],
            **{f"method/{k}": v for k, v in record["summary"].items()},
            **{f"method/n_{k}": v for k, v in record["counts"].items()},
            **{f"method/{k}": v for k, v in record["notes"].items()}}
    return Debiased(lm=HFScoringLM(trained, name=f"{loaded.config.name}+{method.name}"), info=info)


# ---------------------------------------------------------------------------- the corpus
def check_training_files(files: Sequence[str], option: str = "method.data_files") -> None:
    if not files:
        raise ConfigError(f"{option} is empty")
    for rel in files:
        if rel.startswith(EVAL_PREFIXES):
            raise ConfigError(f"{option}: {rel!r} belongs to an evaluation set; training on it would leak")


_MOSES = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" ,", ","), (" .", "."), (" ;", ";"), (" :", ":"),
          (" !", "!"), (" ?", "?"), (" 's", "'s"), (" n't", "n't"), ("( ", "("), (" )", ")"), ("[ ", "["), (" ]", "]")]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def detokenize(text: str) -> str:
    """Undo WikiText's Moses-style spacing (" @-@ " -> "-", " , " -> ", ", ...)."""
    for a, b in _MOSES:
        text = text.replace(a, b)
    text = re.sub(r'" ([^"]*?) "', r'"\1"', text)
    return re.sub(r" {2,}", " ", text).strip()


def read_corpus(data: DataRoot, files: Sequence[str]) -> tuple[list[list[str]], dict[str, int]]:
    """Runs of consecutive sentences of ``files``: paragraphs, split where a sentence holding
    WikiText's ``<unk>`` is dropped; headings ("= Title =") are skipped.  Returns (runs, counts)."""
    runs, kept, dropped = [], 0, 0
    for rel in files:
        with open(data.path(rel), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or (line.startswith("=") and line.endswith("=")):
                    continue
                run: list[str] = []
                for sentence in filter(str.strip, _SENTENCE_END.split(detokenize(line))):
                    if "<unk>" in sentence:
                        dropped += 1
                        runs, run = runs + [run] if run else runs, []
                    else:
                        kept += 1
                        run.append(sentence)
                if run:
                    runs.append(run)
    return runs, {"corpus_sentences": kept, "corpus_sentences_dropped_unk": dropped}


def pack_chunks(runs: list[list[str]], count_tokens: Callable[[list[str]], list[int]], max_tokens: int) -> list[str]:
    """Pack consecutive sentences into chunks of at most ``max_tokens`` tokens (as bias-bench
    groups its corpus into blocks): " " joins sentences of a run, "\n" joins runs; a sentence
    longer than ``max_tokens`` is a chunk of its own (truncated when encoded)."""
    flat = [(s, i > 0) for run in runs for i, s in enumerate(run)]
    lengths = count_tokens([s for s, _ in flat])
    chunks, current, size = [], "", 0
    for (sentence, same_run), n in zip(flat, lengths):
        if current and size + 1 + n > max_tokens:
            chunks.append(current)
            current, size = "", 0
        current, size = (current + (" " if same_run else "\n") + sentence, size + 1 + n) if current else (sentence, n)
    if current:
        chunks.append(current)
    return chunks


def token_counter(lm: HFScoringLM) -> Callable[[list[str]], list[int]]:
    return lambda texts: [len(x) for x in lm.tokenizer(texts, add_special_tokens=False).input_ids] if texts else []


def encode_texts(lm: HFScoringLM, texts: Sequence[str], seq_len: int) -> list[list[int]]:
    """[sentence-start] + tokens, truncated to ``seq_len`` tokens."""
    if not texts:
        return []
    ids = lm.tokenizer(list(texts), add_special_tokens=False).input_ids
    return [[lm.prefix_id] + x[:seq_len - 1] for x in ids]


def corpus_chunks(lm: HFScoringLM, data: DataRoot, files: Sequence[str], seq_len: int) -> tuple[list[str], dict[str, int]]:
    paragraphs, counts = read_corpus(data, files)
    chunks = pack_chunks(paragraphs, token_counter(lm), seq_len - 1)
    return chunks, {**counts, "corpus_chunks": len(chunks)}
