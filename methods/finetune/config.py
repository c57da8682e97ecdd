"""``TrainConfig``: how every fine-tuning method trains (``method.train.*``), and the shared
validation of the fine-tuning methods' fields.

Budgets (``train_budget``, ``MethodContext.budget``): the plain fields are the ``cpu`` budget,
a **toy** budget: 30 steps of 8 x 64 tokens (~15k tokens, well under one pass over WikiText-2
validation), ~10 s of CPU per step on smollm2-135m.  It shows the direction of a method's effect
on a small model, not the paper's setting.  ``smoke`` and ``paper`` hold overrides of these
fields.  ``paper`` is the release's schedule (bias-bench CDA/Dropout, GPT-2: 2,000 steps of 256
sequences, lr 5e-5, on 10% of English Wikipedia, i.e. less than one epoch), with
``max_epochs=1``: when the configured corpus is too small for that schedule to stay within one
pass (WikiText-2 validation would be passed over ~300 times), ``check_epochs`` refuses with a
ConfigError instead of looping over a tiny corpus.

Defaults live in one place: the dataclass defaults here, and a method's ``train`` field default
(``field(default_factory=...)``) where a method trains differently; a YAML ``train:`` block (a
mapping) only overrides, ``coerce_train`` applies it on top of the method's default.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Sequence

from bench.errors import ConfigError
from bench.tasks import is_evaluation_file
from bench.validate import check_fields

BUDGETS = ("smoke", "cpu", "paper")
# bias-bench CDA/Dropout (GPT-2): 2,000 steps of 256 sequences (8 x 32 accumulated), lr 5e-5, < 1 epoch
PAPER_LM = {"max_steps": 2000, "grad_accum": 32, "seq_len": 128, "max_epochs": 1.0}
SMOKE = {"max_steps": 3, "batch_size": 2, "seq_len": 32}


@dataclass
class TrainConfig:
    """How to fine-tune (module docstring: the plain fields are the toy ``cpu`` budget)."""

    optimizer: str = "adamw"  # adamw or adam
    lr: float = 5e-5  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay (adamw only)
    warmup_steps: int = 0  # linear warm-up steps, then linear decay to 0 at the last step
    max_steps: int | None = 30  # optimiser steps (None: derived from epochs)
    epochs: float | None = None  # passes over the training examples, used when max_steps is None
    max_epochs: float | None = None  # refuse to train when the steps pass over the examples more often (None: no limit)
    batch_size: int = 8  # examples per micro-batch (sequences, or contrastive sources)
    grad_accum: int = 1  # micro-batches per optimiser step
    seq_len: int = 64  # tokens per training sequence, sentence-start token included
    max_grad_norm: float = 1.0  # gradient clipping (0: off)
    dtype: str = "fp32"  # fp32, or bf16 (autocast; weights and optimiser state stay fp32)
    lora: bool = False  # train LoRA adapters (merged into the weights before saving) instead of all weights
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA alpha (bias-bench: r 8, alpha 16, dropout 0.1, all linear layers)
    lora_dropout: float = 0.1  # LoRA dropout
    lora_targets: Any = "all-linear"  # peft target_modules: "all-linear" or a list of module names
    smoke: dict = field(default_factory=lambda: dict(SMOKE))  # train_budget=smoke overrides (seconds)
    paper: dict = field(default_factory=lambda: dict(PAPER_LM))  # train_budget=paper overrides (the release's schedule)

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
        if self.max_epochs is not None and self.max_epochs <= 0:
            raise ConfigError(f"method.train.max_epochs must be > 0 or null, got {self.max_epochs}")
        if self.warmup_steps < 0 or self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ConfigError("method.train.warmup_steps, max_grad_norm and weight_decay must be >= 0")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"method.train.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        names = {f.name for f in fields(self)} - {"smoke", "paper"}
        for budget in ("smoke", "paper"):
            unknown = set(getattr(self, budget)) - names
            if unknown:
                raise ConfigError(f"method.train.{budget} has unknown option(s) {sorted(unknown)}; valid: {sorted(names)}")

    def resolve(self, budget: str) -> "TrainConfig":
        """This config under ``budget`` (smoke, cpu or paper)."""
        if budget not in BUDGETS:
            raise ConfigError(f"train_budget={budget!r} is not one of {list(BUDGETS)}")
        return self if budget == "cpu" else replace(self, **getattr(self, budget))

    def steps(self, n_examples: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum)))

    def epochs_over(self, n_examples: int) -> float:
        """Passes over ``n_examples`` training examples that ``steps`` makes."""
        return self.steps(n_examples) * self.batch_size * self.grad_accum / max(1, n_examples)

    def check_epochs(self, n_examples: int, tokens: int, budget: str) -> None:
        """ConfigError when the schedule would pass over the examples more than ``max_epochs`` times."""
        epochs = self.epochs_over(n_examples)
        if self.max_epochs is not None and epochs > self.max_epochs:
            raise ConfigError(
                f"train_budget={budget}: {self.steps(n_examples)} steps x {self.batch_size * self.grad_accum} examples "
                f"would pass {epochs:.1f} times over the {n_examples} training examples ({tokens} unique tokens), more "
                f"than method.train.max_epochs={self.max_epochs} (the release trains < 1 epoch on 10% of Wikipedia); "
                "point method.data_files at a corpus of the release's size, or use train_budget=cpu (a toy budget)")


def coerce_train(method: Any) -> TrainConfig:
    """``method.train`` as a TrainConfig: a mapping (YAML) overrides the method's field default."""
    value = method.train
    if isinstance(value, TrainConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"method.train must be a mapping of training options, got {value!r}")
    unknown = set(value) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"method.train has unknown option(s) {sorted(unknown)}")
    spec = next(f for f in fields(method) if f.name == "train")
    default = spec.default_factory() if spec.default_factory is not MISSING else TrainConfig()
    return replace(default, **value)


def check_method(method: Any) -> None:
    """Shared validation of a fine-tuning method's common fields (``train``, ``nc3_weight``,
    ``max_examples``); coerces ``method.train``."""
    check_fields(method, "method")
    method.train = coerce_train(method)
    if method.nc3_weight < 0:
        raise ConfigError(f"method.nc3_weight must be >= 0, got {method.nc3_weight}")
    if method.max_examples is not None and method.max_examples <= 0:
        raise ConfigError(f"method.max_examples must be > 0 or null, got {method.max_examples}")


def check_training_files(files: Sequence[str], option: str = "method.data_files") -> None:
    if not files:
        raise ConfigError(f"{option} is empty")
    for rel in files:
        if is_evaluation_file(rel):  # derived from every benchmark's DATA_FILES
            raise ConfigError(f"{option}: {rel!r} belongs to an evaluation set; training on it would leak")
