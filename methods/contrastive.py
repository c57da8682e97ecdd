"""Contrastive debiasing with dynamic loss scaling (Korkmaz et al. 2025, "Paying Alignment Tax
with Contrastive Learning"): the release's CLIFF (Cao & Wang 2021) adapted to decoder-only LMs.

- Contrast head on the last hidden layer: Linear(H, H) -> GELU -> Linear(H, H) -> L2-normalise,
  trained with the model and discarded after training.  z_i = L2-normalised mean of head(h_t)
  over example i's target tokens: here every token of the statement (the sentence-start token
  excluded), as there is no separate source text.
- InfoNCE within each source (``methods.contrastive_data``):
  p_ij = exp(z_i.z_j / tau) / sum_{k != i, same source} exp(z_i.z_k / tau);
  L_CL = -mean over ordered positive-positive pairs (i != j) of log p_ij.
- L = s_CE * L_CE(positives) + alpha * s_CL * L_CL (+ nc3_weight * L_NC3), alpha = 16, tau = 1.
  Dynamic scaling (default): an EMA (beta = 0.9) of each loss, updated with the current value
  before use (the first value starts it), and s = min(1, c / EMA) with c = 0.1.
  ``scaling=constant`` keeps s_CE = s_CL = 1 (the ablation).
Release GPT-2 settings: Adam, lr 5e-4, warm-up 10 steps, clip 1.0, 4 epochs (the paper budget);
larger models lr 2e-5 or LoRA (r=8, alpha=32, q/v projections).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from methods.collapse import NC3_WORDS, nc3_plugin
from methods.contrastive_data import GROUPS, build_sources, data_files
from methods.counterfactual import BIAS_TYPES, Swapper, load_groups, word_list_files
from methods.training import (Plan, Regularizer, TrainConfig, check_method, collate, encode_texts, finetune, lm_loss,
                              trainable_copy)


class ContrastHead(nn.Module):
    """Linear(H, H) -> GELU -> Linear(H, H) -> L2-normalise, per token."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=-1)


def pool(head: ContrastHead, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """z [N, H]: normalised mean of head(h_t) over the masked tokens.  hidden [N, T, H], mask [N, T]."""
    w = mask.unsqueeze(-1).float()
    return F.normalize((head(hidden.float()) * w).sum(1) / w.sum(1).clamp(min=1), dim=-1)


def info_nce(z: torch.Tensor, source: torch.Tensor, positive: torch.Tensor, tau: float) -> torch.Tensor:
    """L_CL for embeddings z [N, D] (unit norm), source ids [N] and a positive flag [N]."""
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    same = source[:, None] == source[None, :]
    logits = (z @ z.T / tau).masked_fill(~same | eye, float("-inf"))
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pairs = positive[:, None] & positive[None, :] & same & ~eye
    if not pairs.any():
        return z.sum() * 0.0
    return -log_p[pairs].mean()


class DynamicScaler:
    """s = min(1, c / EMA(loss)); EMA_1 = loss_1, EMA_t = beta EMA_{t-1} + (1 - beta) loss_t."""

    def __init__(self, beta: float = 0.9, c: float = 0.1):
        self.beta, self.c, self.ema = beta, c, None

    def __call__(self, value: float) -> float:
        self.ema = value if self.ema is None else self.beta * self.ema + (1 - self.beta) * value
        return min(1.0, self.c / self.ema) if self.ema > 0 else 1.0


@dataclass
class ContrastiveObjective:
    """One micro-batch of sources: items are (positive id lists, negative id lists)."""

    pad_id: int
    head: ContrastHead
    tau: float
    alpha: float
    scaling: str  # dynamic or constant
    beta: float = 0.9
    c: float = 0.1
    regularizer: Regularizer | None = None
    weight: float = 0.0

    def __post_init__(self) -> None:
        self.scale_ce, self.scale_cl = DynamicScaler(self.beta, self.c), DynamicScaler(self.beta, self.c)

    def parameters(self):
        return self.head.parameters()

    def __call__(self, model: Any, items: list) -> tuple[torch.Tensor, dict[str, float]]:
        seqs, source, positive = [], [], []
        for s, (pos, neg) in enumerate(items):
            seqs += [*pos, *neg]
            source += [s] * (len(pos) + len(neg))
            positive += [True] * len(pos) + [False] * len(neg)
        ids, mask = collate(seqs, self.pad_id, model.device)
        source_t = torch.tensor(source, device=model.device)
        positive_t = torch.tensor(positive, device=model.device)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        h = out.hidden_states[-1]
        ce = lm_loss(out.logits[positive_t], ids[positive_t], mask[positive_t])
        target = mask.clone()
        target[:, 0] = 0  # the sentence-start token is not part of the statement
        cl = info_nce(pool(self.head, h, target), source_t, positive_t, self.tau)
        s_ce, s_cl = (self.scale_ce(ce.item()), self.scale_cl(cl.item())) if self.scaling == "dynamic" else (1.0, 1.0)
        loss = s_ce * ce + self.alpha * s_cl * cl
        parts = {"ce": ce.item(), "cl": cl.item(), "s_ce": s_ce, "s_cl": s_cl}
        if self.regularizer is not None and self.weight > 0:
            reg = self.regularizer(h[:, :-1], ids[:, 1:], mask[:, 1:], model.get_output_embeddings().weight)
            parts["nc3"] = reg.item()
            loss = loss + self.weight * reg
        return loss, parts


@dataclass
class Contrastive:
    """CLIFF-style contrastive fine-tuning on offline positives/negatives (module docstring)."""

    name_base: ClassVar[str] = "contrastive"
    bias_type: str = "gender"  # gender, race or religion: which ToxiGen groups and swap lists
    groups: list[str] | None = None  # ToxiGen groups (None: the bias type's default groups)
    fact_ratio: float = 1.0  # fact sources per group source
    n_negatives: int = 2  # negatives per source
    tau: float = 1.0  # InfoNCE temperature
    alpha: float = 16.0  # weight of L_CL
    scaling: str = "dynamic"  # dynamic (EMA loss scaling) or constant (s_CE = s_CL = 1)
    ema_beta: float = 0.9  # EMA factor of the dynamic scaling
    scale_c: float = 0.1  # c in s = min(1, c / EMA)
    max_examples: int | None = None  # cap on sources (None: all)
    nc3_weight: float = 0.0  # lambda of the NC3 regularizer (0: off)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # NC3 class word lists
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        optimizer="adam", lr=5e-4, warmup_steps=10, max_steps=40, batch_size=4,
        paper={"max_steps": None, "epochs": 4.0}))  # release GPT-2 settings; batch = sources

    def __post_init__(self) -> None:
        check_method(self)
        if self.bias_type not in BIAS_TYPES:
            raise ConfigError(f"method.bias_type={self.bias_type!r} is not one of {list(BIAS_TYPES)}")
        if self.scaling not in ("dynamic", "constant"):
            raise ConfigError(f"method.scaling={self.scaling!r} is not one of ['dynamic', 'constant']")
        for name in ("tau", "alpha", "scale_c"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"method.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.ema_beta < 1:
            raise ConfigError(f"method.ema_beta must be in [0, 1), got {self.ema_beta}")
        if self.fact_ratio < 0 or self.n_negatives < 1:
            raise ConfigError("method.fact_ratio must be >= 0 and method.n_negatives >= 1")
        if self.groups is not None and not self.groups:
            raise ConfigError("method.groups is empty (null: the bias type's default groups)")

    @property
    def name(self) -> str:
        return self.name_base + ("_nc3" if self.nc3_weight > 0 else "")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        files = [*data_files(ctx.data, self.bias_type, self.groups), *word_list_files(self.bias_type),
                 *(self.nc3_words if self.nc3_weight > 0 else [])]
        return finetune(self, loaded, ctx, files, self._build(ctx))

    def _build(self, ctx: MethodContext):
        def build(loaded: LoadedModel, cfg: TrainConfig) -> Plan:
            lm = HFScoringLM(loaded)
            swapper = Swapper(*load_groups(ctx.data, self.bias_type))
            sources, counts = build_sources(ctx.data, self.bias_type, swapper, ctx.seed, self.groups,
                                            self.fact_ratio, self.n_negatives)
            sources = sources[:self.max_examples]
            items = [(encode_texts(lm, s.positives, cfg.seq_len), encode_texts(lm, s.negatives, cfg.seq_len))
                     for s in sources]
            reg, notes = nc3_plugin(lm, ctx.data, self.nc3_words, self.nc3_weight)
            head = ContrastHead(loaded.model.config.hidden_size).to(loaded.device)
            objective = ContrastiveObjective(loaded.tokenizer.pad_token_id, head, self.tau, self.alpha, self.scaling,
                                             self.ema_beta, self.scale_c, reg, self.nc3_weight)
            return Plan(model=trainable_copy(loaded.model), objective=objective, items=items,
                        counts={**counts, "train_sources": len(items)},
                        notes={"bias_type": self.bias_type, "groups": ",".join(self.groups or GROUPS[self.bias_type]),
                               "scaling": self.scaling, **notes})
        return build
