"""Contrastive debiasing (Korkmaz et al. 2025, "Paying Alignment Tax with Contrastive Learning"):
the release's CLIFF (Cao & Wang 2021) for decoder-only LMs, as in its ``src/training/loss.py``,
``src/models/model_utils.py`` and ``src/data/improved_dataset.py`` (ConsistentContrastiveCollator).

Sequences.  Every target of a source (``methods.contrastive_data``) is one sequence
[sentence start] + context + " " + target (context truncated on the left to fit ``seq_len``,
target to ``seq_len // 2`` tokens).

- L_CE (the release's ``ce_pos``): next-token NLL of the **last positive** of each source, on its
  target tokens as the release labels them (label[i] = token[i + 1] for the target positions
  i = start .. end - 2, so every target token but the first is predicted, conditioned on the
  context), summed, divided by the number of such label tokens over *all* sequences of the
  micro-batch (the release's ``ntokens``).
- Contrast head on the last hidden layer, per token: Linear(H, H) -> GELU -> Linear(H, H) ->
  L2-normalise, initialised as the release (first weight N(0, 0.01^2), second N(0, (1/H)^2),
  biases 0); trained with the model and discarded.  z_i = L2-normalised mean of the head over
  the target's marked tokens (attribute words, fact objects) where it has any, else over all its
  target tokens (the release pools spaCy entity marks; the counts of both cases are reported).
- L_CL within each source, tau = 1:  p_ij = exp(z_i.z_j / tau) / sum_{k != i, same source}
  exp(z_i.z_k / tau);  L_CL = -mean over ordered positive pairs (i != j) of log p_ij.
- w_tox = ``toxic_weight`` (1.5) when a toxic negative is in the micro-batch, else 1 (the
  release's criterion; its collator does not pass ``augmentation_types``, so the release run
  itself had w_tox = 1: ``toxic_weight=1.0`` reproduces that).
- ``scaling=constant`` (the release's active code): L = L_CE + alpha * w_tox * L_CL, alpha = 16.
- ``scaling=ema`` (its "dynamic loss scaling", commented out in ``trainer.py``):
  L = s_CE * L_CE + s_CL * (w_tox * L_CL), no alpha; s = min(1, c / EMA) with c = 0.1, where the
  EMA (beta = 0.9) starts at 0, s = 1 on the first micro-batch, and each s uses the EMA of the
  micro-batches before it (the EMA takes the current loss after).  Deviation: the release skips
  the update at the first step of every epoch (``step`` restarts); here only at the first.
Optimiser (release): Adam, warm-up 10 steps, clip 1.0, 4 epochs (the ``paper`` budget).  GPT-2
lr 5e-4 full fine-tuning on ~20k sources, Phi-2 lr 2e-5; LoRA r 8, alpha 32 on q/v at 5e-4.
The default here is the sweep's choice on smollm2-135m (``results/contrastive_sweep.md``).
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
from bench.data import DataRoot
from methods.contrastive_data import Source, build_sources
from methods.finetune.checkpoint import Plan, finetune
from methods.finetune.config import TrainConfig, check_method
from methods.finetune.batching import collate, packed_logits, packing_matches, unpack
from methods.finetune.loop import Regularizer
from methods.finetune.nc3 import NC3_WORDS, nc3_plugin
from methods.text.swap import Swapper
from methods.text.words import BIAS_TYPES, load_tuples

SCALINGS = ("constant", "ema")


class ContrastHead(nn.Module):
    """Linear(H, H) -> GELU -> Linear(H, H) -> L2-normalise, per token; the release's init."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense, self.out_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        nn.init.normal_(self.dense.weight, std=0.01)
        nn.init.normal_(self.out_proj.weight, std=1.0 / hidden)
        nn.init.zeros_(self.dense.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out_proj(F.gelu(self.dense(h))), dim=-1)


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


def ce_last_positive(logits: torch.Tensor, ids: torch.Tensor, ce_mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """sum of -log p(ids[t] | ids[:t]) over the positions t with ``ce_mask[t]``, / ``n_tokens``.
    logits [B, T, V] (rows of the CE sequences only), ids and ce_mask [B, T]."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (nll * ce_mask[:, 1:].float()).sum() / max(n_tokens, 1)


class EMAScale:
    """The release's dynamic scale: s = 1 at the first call, then min(1, c / EMA) from the EMA of
    the earlier calls; EMA_0 = 0, EMA <- beta EMA + (1 - beta) loss after each call."""

    def __init__(self, beta: float = 0.9, c: float = 0.1):
        self.beta, self.c, self.ema, self.scale, self.calls = beta, c, 0.0, 1.0, 0

    def __call__(self, value: float) -> float:
        if self.calls > 0 and self.ema > 0:
            self.scale = min(1.0, self.c / self.ema)
        self.ema = self.beta * self.ema + (1 - self.beta) * value
        self.calls += 1
        return self.scale


@dataclass(frozen=True)
class Encoded:
    """One sequence: token ids, the index of its first target token and its marked positions."""

    ids: tuple[int, ...]
    start: int
    marked: tuple[int, ...]


@dataclass(frozen=True)
class Item:
    """One source, encoded: positives first (CE on the last), then negatives."""

    sequences: tuple[Encoded, ...]
    n_positives: int
    toxic: bool  # a toxic negative is among the negatives


def encode_source(lm: HFScoringLM, source: Source, seq_len: int) -> Item:
    """[sentence start] + context (left-truncated) + " " + target (at most seq_len // 2 tokens)."""
    tok = lm.tokenizer
    context = tok(source.context, add_special_tokens=False).input_ids
    enc = tok([" " + t for t in source.targets], add_special_tokens=False, return_offsets_mapping=True)
    sequences = []
    for ids, offsets, spans in zip(enc.input_ids, enc.offset_mapping, source.marks):
        target = ids[:seq_len // 2]
        ctx = context[max(0, len(context) - (seq_len - 1 - len(target))):]
        start = 1 + len(ctx)
        marked = tuple(start + j for j, (a, b) in enumerate(offsets[:len(target)])
                       if any(a < e + 1 and b > s + 1 for s, e in spans))  # spans are in target coordinates
        sequences.append(Encoded((lm.prefix_id, *ctx, *target), start, marked))
    return Item(tuple(sequences), len(source.positives), "toxic" in source.negative_kinds)


def sequence_masks(seqs: list[Encoded], width: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """[N, width] bool masks: target tokens; pooled tokens (marked ones where a sequence has any,
    else its target tokens); label tokens (target tokens after the first: the release's labels)."""
    pos = torch.arange(width, device=device)[None]
    starts = torch.tensor([s.start for s in seqs], device=device)[:, None]
    ends = torch.tensor([len(s.ids) for s in seqs], device=device)[:, None]
    target = (pos >= starts) & (pos < ends)
    marked = torch.zeros_like(target)
    for row, s in enumerate(seqs):
        marked[row, list(s.marked)] = True
    return target, torch.where(marked.any(1, keepdim=True), marked, target), (pos > starts) & (pos < ends)


@dataclass
class ContrastiveObjective:
    """One micro-batch of encoded sources -> (L, parts) in the chosen loss form (module docstring)."""

    pad_id: int
    head: ContrastHead
    tau: float
    alpha: float
    scaling: str  # constant or ema
    toxic_weight: float
    beta: float = 0.9
    c: float = 0.1
    regularizer: Regularizer | None = None
    weight: float = 0.0
    packing: bool | None = None  # sequences as one packed row (None: batching.packing_matches decides, first call)
    head_on_ce_rows: bool | None = None  # output embedding on the CE rows' states only (None: the first call decides)

    def __post_init__(self) -> None:
        self.scale_ce, self.scale_cl = EMAScale(self.beta, self.c), EMAScale(self.beta, self.c)

    def parameters(self):
        return self.head.parameters()

    def combine(self, ce: torch.Tensor, cl: torch.Tensor, toxic: bool) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.toxic_weight if toxic else 1.0
        if self.scaling == "constant":
            s_ce, s_cl = 1.0, self.alpha
        else:
            s_ce, s_cl = self.scale_ce(ce.item()), self.scale_cl(w * cl.item())
        return s_ce * ce + s_cl * w * cl, {"ce": ce.item(), "cl": cl.item(), "s_ce": s_ce, "s_cl": s_cl, "w_tox": w}

    def forward(self, model: Any, seqs: list[Encoded], ids: torch.Tensor, mask: torch.Tensor, ce_rows: list[int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-layer hidden states [S, T, H] of every sequence (zeros at padding when packed) and the logits
        [len(ce_rows), T, V] of the CE rows.  The sequences run as one packed row (``batching``) where the probe
        on the first call accepts it (``packing``; 56 % of the padded positions are real tokens at the default
        batch).  Only the CE rows need logits (4 of 16 rows), so where the model's logits are its output
        embedding applied to the last hidden states (``head_on_ce_rows``, checked on the first call's full
        logits), the model computes one position's logits and the embedding runs on the CE rows' states."""
        if self.packing is None:
            self.packing = packing_matches(model, [s.ids for s in seqs], self.pad_id)
        full = self.head_on_ce_rows is not True  # every position's logits: the first call, or a refused check
        kwargs = {"output_hidden_states": True} | ({} if full else {"logits_to_keep": 1})
        if self.packing:
            out, _, _ = packed_logits(model, [s.ids for s in seqs], **kwargs)
            states, logits = out.hidden_states[-1][0], out.logits[0]  # [N, H], [N or 1, V]
            h = unpack(states, mask)
        else:
            out = model(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs)
            states, logits = out.hidden_states[-1], out.logits
            h = states
        if self.head_on_ce_rows is None:
            with torch.no_grad():
                rebuilt = model.get_output_embeddings()(states)
            self.head_on_ce_rows = bool(torch.allclose(rebuilt, logits, atol=1e-4, rtol=1e-4))
        if full:
            return h, unpack(logits, mask, ce_rows) if self.packing else logits[ce_rows]
        return h, model.get_output_embeddings()(h[ce_rows])

    def __call__(self, model: Any, items: list[Item]) -> tuple[torch.Tensor, dict[str, float]]:
        seqs = [s for item in items for s in item.sequences]
        ids, mask = collate([s.ids for s in seqs], self.pad_id, model.device)
        rows = [(i, j, item.n_positives) for i, item in enumerate(items) for j in range(len(item.sequences))]
        source = torch.tensor([i for i, _, _ in rows], device=model.device)
        positive = torch.tensor([j < n for _, j, n in rows], device=model.device)
        ce_rows = [k for k, (_, j, n) in enumerate(rows) if j == n - 1]  # the last positive of each source
        _, pool_mask, label = sequence_masks(seqs, ids.shape[1], model.device)
        n_labels = int(label.sum())  # the release's ntokens: label tokens of every sequence

        h, ce_logits = self.forward(model, seqs, ids, mask, ce_rows)
        ce = ce_last_positive(ce_logits, ids[ce_rows], label[ce_rows], n_labels)
        cl = info_nce(pool(self.head, h, pool_mask), source, positive, self.tau)
        loss, parts = self.combine(ce, cl, any(item.toxic for item in items))
        if self.regularizer is not None and self.weight > 0:
            reg = self.regularizer(h[:, :-1], ids[:, 1:], mask[:, 1:], model.get_output_embeddings().weight)
            parts["nc3"] = reg.item()
            loss = loss + self.weight * reg
        return loss, parts


@dataclass
class Contrastive:
    """Contrastive fine-tuning on offline sources in the release's two loss forms (module docstring)."""

    name_base: ClassVar[str] = "contrastive"
    bias_type: str = "gender"  # gender, race or religion: the attribute words of the counterfactual positives
    scaling: str = "constant"  # constant (release active code: alpha 16, unit scales) or ema (EMA scales, no alpha)
    alpha: float | None = None  # weight of L_CL (None: 16 for constant, 1 for ema; ema allows only 1)
    toxic_weight: float = 1.5  # w_tox on L_CL when a toxic negative is in the micro-batch (1.0: as the release ran)
    tau: float = 1.0  # InfoNCE temperature
    ema_beta: float = 0.9  # EMA factor of scaling=ema
    scale_c: float = 0.1  # c in s = min(1, c / EMA) of scaling=ema
    fact_ratio: float = 1.0  # fact sources per group source
    n_negatives: int = 2  # negatives per source
    context_items: int = 2  # ToxiGen statements before the target in a group source's context
    max_examples: int | None = None  # cap on sources (None: all)
    nc3_weight: float = 0.0  # lambda of the NC3 regularizer (0: off)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # NC3 class word lists
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        optimizer="adam", lr=5e-5, warmup_steps=10, max_steps=40, batch_size=4, seq_len=96,
        lora_alpha=32, lora_targets=["q_proj", "v_proj"], paper={"max_steps": None, "epochs": 4.0}))  # batch = sources

    def __post_init__(self) -> None:
        check_method(self)
        if self.bias_type not in BIAS_TYPES:
            raise ConfigError(f"method.bias_type={self.bias_type!r} is not one of {list(BIAS_TYPES)}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"method.scaling={self.scaling!r} is not one of {list(SCALINGS)}")
        if self.alpha is None:
            self.alpha = 16.0 if self.scaling == "constant" else 1.0
        if self.scaling == "ema" and self.alpha != 1.0:
            raise ConfigError(f"method.alpha={self.alpha} with method.scaling=ema: the release's EMA form has no "
                              "alpha (leave method.alpha null)")
        for name in ("tau", "alpha", "scale_c", "toxic_weight"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"method.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.ema_beta < 1:
            raise ConfigError(f"method.ema_beta must be in [0, 1), got {self.ema_beta}")
        if self.fact_ratio < 0 or self.n_negatives < 1 or self.context_items < 0:
            raise ConfigError("method.fact_ratio and method.context_items must be >= 0, method.n_negatives >= 1")

    @property
    def name(self) -> str:
        return self.name_base + ("_nc3" if self.nc3_weight > 0 else "")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        return finetune(self, loaded, ctx)

    def plan(self, lm: HFScoringLM, data: DataRoot, cfg: TrainConfig, seed: int) -> Plan:
        """Sources -> encoded items, the contrast head (trained with the model) and the objective."""
        swapper = Swapper(load_tuples(data, self.bias_type), fold_case=True)  # statements start with capitals
        sources, counts = build_sources(data, swapper, seed, self.fact_ratio, self.n_negatives, self.context_items)
        sources = sources[:self.max_examples]
        items = [encode_source(lm, s, cfg.seq_len) for s in sources]
        seqs = [s for item in items for s in item.sequences]
        reg, notes = nc3_plugin(lm, data, self.nc3_words, self.nc3_weight)
        head = ContrastHead(lm.model.config.hidden_size).to(lm.device)
        objective = ContrastiveObjective(lm.tokenizer.pad_token_id, head, self.tau, self.alpha, self.scaling,
                                         self.toxic_weight, self.ema_beta, self.scale_c, reg, self.nc3_weight)
        counts = {**counts, "train_sources": len(items), "pooled_marked": sum(bool(s.marked) for s in seqs),
                  "pooled_all_target_tokens": sum(not s.marked for s in seqs)}
        notes = {"bias_type": self.bias_type, "scaling": self.scaling, "alpha": self.alpha,
                 "toxic_weight": self.toxic_weight,
                 "pooling": "marked tokens (attribute words, fact objects) where a target has any, else all target tokens",
                 "release_data": "TL;DR sources not reachable offline: ToxiGen + LAMA train-split sources instead",
                 **notes}
        tokens = sum(len(s.ids) for s in seqs)
        return Plan(objective=objective, items=items, tokens=tokens, counts=counts, notes=notes,
                    train_head=reg is not None)
