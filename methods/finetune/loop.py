"""The training loop and the causal-LM objective.

``fit``: AdamW/Adam (torch's fused kernels) with linear warm-up then linear decay to 0, gradient accumulation and
clipping, optional bf16 autocast (weights and optimiser state stay fp32), a progress bar with the
running loss (``bench.progress``), and a guard that raises ``TrainingError`` naming the step on a
NaN/inf loss.  It returns the loss of every optimiser step (and of each loss part), the training
curve every run records.  ``LMObjective`` runs a micro-batch as one packed row where the model
allows it (``batching``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import TrainingError
from bench.progress import progress
from methods.finetune.batching import collate, packed_logits, packing_matches
from methods.finetune.config import TrainConfig


class Objective(Protocol):
    """Loss of one micro-batch: ``(loss, {part: value})``; ``parameters()`` are extra trainable
    parameters besides the model's (e.g. a contrast head)."""

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def __call__(self, model: Any, items: list) -> tuple[torch.Tensor, dict[str, float]]: ...


# regularizer(hidden [B, T, H], next-token labels [B, T], mask [B, T], head weight [V, H]) -> scalar
Regularizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) over the non-padding targets.  logits [B, T, V]."""
    target_mask = mask[:, 1:].float()
    nll = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return (nll * target_mask.flatten()).sum() / target_mask.sum().clamp(min=1)


@dataclass
class LMObjective:
    """Causal-LM loss on token sequences, plus ``weight`` x an optional regularizer (NC3) of the
    last-layer hidden states.  A micro-batch runs as one packed row (``batching``) where the probe on
    the first micro-batch accepts packing (``packing`` is then True), as right-padded rows otherwise."""

    pad_id: int
    regularizer: Regularizer | None = None
    weight: float = 0.0
    packing: bool | None = None  # packed rows (None: decided by batching.packing_matches at the first call)

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def __call__(self, model: Any, items: list) -> tuple[torch.Tensor, dict[str, float]]:
        if self.packing is None:
            self.packing = packing_matches(model, items, self.pad_id)
        use_reg = self.regularizer is not None and self.weight > 0
        if self.packing:
            out, ids, mask = packed_logits(model, items, output_hidden_states=use_reg)
        else:
            ids, mask = collate(items, self.pad_id, model.device)
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=use_reg, use_cache=False)
        loss = lm_loss(out.logits, ids, mask)
        parts = {"lm": loss.item()}
        if use_reg:
            reg = self.regularizer(out.hidden_states[-1][:, :-1], ids[:, 1:], mask[:, 1:],
                                   model.get_output_embeddings().weight)
            parts["nc3"] = reg.item()
            loss = loss + self.weight * reg
        return loss, parts


def _batches(n: int, size: int, seed: int) -> Iterator[list[int]]:
    """Endless seeded shuffled passes over range(n), ``size`` indices at a time."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while True:
        while len(order) < size:
            order += rng.permutation(n).tolist()
        yield order[:size]
        order = order[size:]


FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused Adam/AdamW kernels run


def _optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params``, with torch's fused kernel (one pass over each tensor's parameter, gradient
    and moments) where every parameter is a float tensor on a FUSED_DEVICES device: the same update as the
    default for-each implementation up to float rounding (~1e-8 apart after 20 steps in the test); on the
    2-core VM, 77 against 327 ms a step for smollm2-135m's 135M parameters."""
    fused = all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, fused=fused or None)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def schedule(step: int, warmup: int, total: int) -> float:
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
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, cfg.warmup_steps, total))
    batches = _batches(len(items), cfg.batch_size, seed)
    history: dict[str, list[float]] = {"loss": []}
    model.train()
    bar = progress(range(1, total + 1), desc=desc, unit="step", mininterval=2.0)
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
