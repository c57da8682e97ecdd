"""``ScoringLM`` over a Hugging Face causal LM: prefix-sharing batched scoring and batched
k-sample generation, all under ``torch.inference_mode()``.

Scoring engine.  Requests are tokenised as lm-evaluation-harness does (trailing context
whitespace moves to the continuation; the continuation's tokens are the whole text's
tokens after the context's; an empty context is the sentence-start token; a ``bare`` request
is two ordinary pairs, see ``token_pairs``).  Each distinct request reads x = context + continuation[:-1] and needs the logits at x's last m positions.
Requests are sorted by x, and every token that inputs share runs once:

* stem: a run of inputs sharing >= ``STEM_MIN`` tokens (TruthfulQA's 6-shot primer) runs
  its common prefix once, batch 1, if the run fills more than one row;
* rows: the inputs are split into rows of consecutive inputs, and a row runs the prefix tree
  of its inputs beyond the stem as one sequence: each distinct prefix (a question's context,
  the words two CrowS sentences share, an answer's first word) is one node, which attends to
  the stem and its ancestors only (an additive tree mask; positions are tree depths).  A
  dynamic programme over the sorted inputs keeps rows within ``ROW_TOKENS`` nodes while
  minimising nodes plus ROW_TOKENS per row.

Rows are batched by a dynamic programme over length-sorted rows (at most ``batch_size`` per
pass) that minimises padded tokens plus a per-pass cost, against the stem's key/value cache
(expanded, not copied).  Logits are projected only at the nodes that predict continuation
tokens (``logits_to_keep`` mask), and log-probabilities use logsumexp + gather (more exact
than an fp32 log-softmax, and no [tokens, vocab] copy; ``target_logprobs``).  On CPU, passes run under
``bench.engine.cpu_inference`` (grouped key/value heads read in place, freed logits memory reused;
decoding steps project the LM head in vocabulary blocks).  Results equal scoring every
request alone up to float rounding (1e-4).  Models with sliding-window layers (Gemma 3)
share nothing when an input is longer than the window (one tree mask serves every layer):
every input is then a plain right-padded row, so windows always count real tokens.

Generation engine.  Prompts are left padded and encoded once per batch (of at most
``model.batch_size`` prompts and ``DECODE_ROWS`` decoded rows); the k rows of a
prompt (samples or beams) decode against one copy of its keys and values
(``bench.engine.shared_prompt``; when the padded prompts and the new tokens outgrow a
sliding window, or the attention is soft-capped, each row gets its own copy instead), with
buffers holding room for every new token (each step writes its keys and values in place,
where a growing cache would copy itself), token by token with nucleus sampling
(``bench.engine.nucleus``: each row's nucleus is sought among its top tokens, not by sorting
the vocabulary).  Each prompt draws its uniforms from its own generator seeded by
(spec.seed, prompt index), so continuations do not depend on batch composition.  Decoding
stops when every row has emitted end-of-text.  Before
``spec.min_new_tokens`` end-of-text is masked as Hugging Face's min-length processor does:
on the logits when sampling, on the log-softmax (not renormalised) in beam search; a combine
step sees the variants' distributions renormalised without it (as Self-Debias's logits
processor, which runs after the min-length one).  Beam search (``spec.num_beams`` rows per
prompt) keeps at each step the ``num_beams`` best (beam, token) extensions by summed
log-probability, reorders the cache rows to their beams, and returns the best beam; with
every beam of the same length (min_new_tokens = max_new_tokens, which ``GenerationSpec``
requires) this is Hugging Face's beam search under any length penalty.

Debiasing hooks.  ``hidden_transform`` maps final hidden states [..., H] -> [..., H]
before the LM head (INLP, SentenceDebias); it applies to scoring, generation and
``hidden_states``.  ``token_logprobs`` and ``sample`` expose full next-token
distributions and a combine step for decoding-time methods (Self-Debias).

Non-finite outputs.  Every scoring and hidden-state output (``loglikelihood``,
``loglikelihood_rolling``, ``token_logprobs``, ``hidden_states``, ``per_token_hidden_states``)
is checked once with ``torch.isfinite`` before it is returned: a NaN or inf (a corrupt or
diverged model, a broken projection) raises ``NonFiniteError`` naming the first offending
input's index in the call and its text, never a metric computed from NaN.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from transformers.cache_utils import DynamicLayer

from bench.engine import shared_prompt
from bench.engine.cache_layers import PreallocatedLayer
from bench.engine.cpu_inference import cpu_inference, reuse_freed_memory, row_logsumexp
from bench.engine.nucleus import nucleus
from bench.errors import ConfigError, TaxbenchError
from bench.api.lm import GenerationSpec, Loglikelihood, Request
from bench.progress import progress
from bench.api import LoadedModel

log = logging.getLogger(__name__)

TokenPair = tuple[tuple[int, ...], tuple[int, ...]]  # (context ids, continuation ids)
# combine(logprobs [B, V_variants, k, vocab]) -> logprobs [B, k, vocab]: how variant streams decide a token
Combine = Callable[[torch.Tensor], torch.Tensor]
# sink(item [N], continuation index [N], target token [N], logits [M, vocab], logits row [N]) of N predictions
Sink = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]

STEM_MIN = 32  # tokens a run of sorted inputs must share for its common prefix to run once for all
ROW_TOKENS = 128  # tokens a row's prefix tree may hold (a longer input runs alone in its row)
LOGIT_BUDGET = 1 << 27  # logit values (512 MiB in fp32) one scoring forward pass may return
PASS_COST = 32  # padded tokens a CPU forward pass is worth (per-pass overhead, when chunking by length)
PASS_COST_ACCELERATOR = 4096  # the same on GPU, where padding is nearly free and passes are not
# (prompt, variant, sample) rows decoded at once, whatever model.batch_size: past ~300 rows a step is no faster
# per row (smollm2-135m, 2-core CPU: 32 prompts x k=25 in batches of 8/12/16/32 prompts took 23.2/20.0/18.9/17.9 s,
# within run-to-run noise of +-20 %) while the rows' keys/values and [rows, vocab] logits grow (peak RSS
# 1,310/1,374/1,547/2,136 MiB)
DECODE_ROWS = 320


def join_parts(sizes: Sequence[int], parts: Sequence[Loglikelihood]) -> list[Loglikelihood]:
    """One answer per request from the answers to its ``sizes[i]`` consecutive token pairs
    (log-probs and token counts add up; greedy when every part is)."""
    out, i = [], 0
    for n in sizes:
        group = parts[i:i + n]
        out.append(group[0] if n == 1 else Loglikelihood(sum(a.logprob for a in group),
                                                         all(a.is_greedy for a in group),
                                                         sum(a.n_tokens for a in group)))
        i += n
    return out


class NonFiniteError(TaxbenchError):
    """A model output is NaN or infinite."""


def target_logprobs(logits: torch.Tensor, row: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob (nats) of token ``target`` [n] under row ``row`` [n] of ``logits`` [N, vocab], and whether
    it is not that row's argmax (the first maximum, as lm-eval's greedy check ``argmax == target``), both [n].
    One ``row_logsumexp`` pass gives the normaliser and the max; argmax runs only on rows tied at the max."""
    lse, top = row_logsumexp(logits)
    at = logits[row, target]
    wrong = at < top[row, 0]
    tied = (at == top[row, 0]).nonzero()[:, 0]
    wrong[tied] = logits[row[tied]].argmax(-1) != target[tied]
    return at - lse[row, 0], wrong


def _require_finite(values: Sequence[torch.Tensor] | torch.Tensor, text: Callable[[int], str], what: str) -> None:
    """Raise NonFiniteError naming the first i whose ``values[i]`` holds a NaN/inf (``text(i)``: its input)."""
    ok = torch.isfinite(values).flatten(1).all(1) if isinstance(values, torch.Tensor) else \
        torch.tensor([bool(torch.isfinite(v).all()) for v in values], dtype=torch.bool)
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0])
        snippet = text(i)
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        raise NonFiniteError(f"non-finite {what} for input {i} of {len(ok)} ({snippet!r}): "
                             "the model or method produced NaN/inf")


def _plain(logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs[:, 0]


@dataclass
class _Item:
    """A distinct request: the model reads ``x`` = context + continuation[:-1]; the logits
    at positions ``first`` .. len(x) - 1 predict ``cont``."""

    x: tuple[int, ...]
    first: int
    cont: tuple[int, ...]


@dataclass
class _Tree:
    """One row of a forward pass: the prefix tree of some items' inputs after the stem, each
    distinct prefix one node, parents before children."""

    tokens: list[int]  # node -> token id
    parents: list[int]  # node -> parent node (-1: a root, which follows the stem)
    slots: list[tuple[int, int, int]]  # (item, continuation index, node whose logits predict it)

    @property
    def chain(self) -> bool:
        """Whether the tree is one sequence (plain causal attention, no tree mask needed)."""
        return all(p == v - 1 for v, p in enumerate(self.parents))


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token tuples (slice compares, binary search)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if a[:mid] == b[:mid] else (lo, mid)
    return lo


def _split_rows(lengths: list[int], lcp: list[int], stem: int) -> list[tuple[int, int]]:
    """Cheapest split of sorted inputs (``lengths``; ``lcp[i]`` = common prefix of inputs i, i+1)
    into rows (lo, hi) of consecutive inputs.  A row holds its inputs' prefix tree beyond the
    stem: width = the first input's tokens + each next input's tokens beyond its common prefix
    with the one before.  A row of two or more inputs is at most ROW_TOKENS wide; a row costs
    its width plus ROW_TOKENS (the padding it brings to its pass).  Dynamic programme over row ends."""
    best, start = [0] + [math.inf] * len(lengths), [0] * (len(lengths) + 1)
    for j in range(1, len(lengths) + 1):
        width = lengths[j - 1] - stem
        for i in range(j - 1, -1, -1):  # the row [i, j)
            if i < j - 1:
                width += lengths[i] - lcp[i]
                if width > ROW_TOKENS:
                    break
            cost = best[i] + width + ROW_TOKENS
            if cost < best[j]:
                best[j], start[j] = cost, i
    rows, j = [], len(lengths)
    while j:
        rows.append((start[j], j))
        j = start[j]
    return rows[::-1]


def _plan(items: list[_Item], share: bool = True) -> list[tuple[int, list[list[int]]]]:
    """(stem length, rows) clusters covering every item, each row a list of items in input
    order.  Sorted runs whose inputs share >= STEM_MIN tokens and fill more than one row get a
    stem; all other inputs share stem length 0.  Without ``share``, every item is its own row."""
    if not share:
        return [(0, [[i] for i in range(len(items))])]
    order = sorted(range(len(items)), key=lambda i: items[i].x)
    xs = [items[i].x for i in order]
    lcp = [_common(a, b) for a, b in zip(xs, xs[1:])]
    runs: list[list[int]] = []  # [lo, hi, stem]
    lo, shared = 0, len(xs[0])
    for i in range(1, len(xs) + 1):
        if i < len(xs) and min(shared, lcp[i - 1]) >= STEM_MIN:
            shared = min(shared, lcp[i - 1])
            continue
        stem = min(shared, *(items[j].first for j in order[lo:i])) if i - lo > 1 else 0
        if stem and len(xs[lo]) + sum(len(x) - c for x, c in zip(xs[lo + 1:i], lcp[lo:i - 1])) <= ROW_TOKENS:
            stem = 0  # the run fits one row: its prefix tree runs the shared tokens once anyway
        if runs and not stem and not runs[-1][2]:
            runs[-1][1] = i  # consecutive stemless runs split into rows together
        else:
            runs.append([lo, i, stem])
        if i < len(xs):
            lo, shared = i, len(xs[i])
    return [(stem, [order[lo + a:lo + b] for a, b in _split_rows([len(x) for x in xs[lo:hi]], lcp[lo:hi - 1], stem)])
            for lo, hi, stem in runs]


def _tree(items: list[_Item], members: list[int], stem: int) -> _Tree:
    """The prefix tree of ``members``' inputs (sorted) beyond their first ``stem`` tokens."""
    tree = _Tree([], [], [])
    path: list[int] = []  # node of each position stem.. of the previous input
    previous: tuple[int, ...] | None = None
    for m in members:
        x = items[m].x
        del path[(stem if previous is None else _common(previous, x)) - stem:]
        for token in x[stem + len(path):]:
            tree.parents.append(path[-1] if path else -1)
            path.append(len(tree.tokens))
            tree.tokens.append(token)
        tree.slots += [(m, t - items[m].first, path[t - stem]) for t in range(items[m].first, len(x))]
        previous = x
    return tree


class HFScoringLM:
    """The reference ``ScoringLM``.  ``hidden_transform`` (optional) edits final hidden states."""

    def __init__(self, loaded: LoadedModel, hidden_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 name: str | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.batch_size = loaded.config.batch_size
        self.name = name or loaded.config.name
        self.max_length = loaded.config.max_length or getattr(self.model.config, "max_position_embeddings", 2048)
        self.prefix_id = self._prefix_token_id(loaded.config.bos_token)
        self.hidden_transform = hidden_transform
        self._warned_truncation = False
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.x: cache=
        self._window, self._plain_cache = self._cache_layout()
        # k rows per prompt decode against one copy of its keys/values (bench.engine.shared_prompt) when
        # the decode fits every sliding window (see _sample_batch)
        self.share_prompt = self._plain_cache and shared_prompt.supports(self.model)
        if self.device.type == "cpu":
            reuse_freed_memory()
        if hidden_transform is not None:  # the model belongs to this LM from now on
            self.model.get_output_embeddings().register_forward_pre_hook(
                lambda _m, args: (hidden_transform(args[0]),) + tuple(args[1:]))

    # ----------------------------------------------------------------- tokenising
    def _prefix_token_id(self, bos_token: str | None) -> int:
        tok = self.tokenizer
        if bos_token is not None:
            ids = tok.convert_tokens_to_ids(bos_token)
            if ids is None or (ids == tok.unk_token_id and bos_token != tok.unk_token):
                raise ConfigError(f"model.bos_token={bos_token!r} is not a token of {self.loaded.config.name}'s vocabulary")
            return ids
        token_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if token_id is None:
            raise ConfigError(f"model {self.loaded.config.name} has no bos/eos token: set model.bos_token")
        return token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def encode_pair(self, request: Request) -> TokenPair:
        """lm-evaluation-harness tokenisation of a (context, continuation) request."""
        context, continuation = request.context, request.continuation
        if not continuation:
            raise ValueError(f"empty continuation in request with context {context[:60]!r}")
        if not context:
            return (self.prefix_id,), tuple(self.encode(continuation))
        n_space = len(context) - len(context.rstrip())
        if n_space:
            context, continuation = context[:-n_space], context[-n_space:] + continuation
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        if whole[:len(ctx)] != ctx or len(whole) == len(ctx):  # a token straddles the boundary
            return tuple(ctx), tuple(self.encode(continuation))
        return tuple(ctx), tuple(whole[len(ctx):])

    def token_pairs(self, request: Request) -> list[TokenPair]:
        """The pairs whose log-probabilities sum to the request's: ``encode_pair``'s one pair; for a
        ``bare`` request whose text has tokens t1..tn (no special tokens), the pair start token ->
        (t1,) and, when n >= 2, the pair (t1,) -> (t2..tn), which the model reads as t1..t_{n-1}
        with no start token."""
        if not request.bare:
            return [self.encode_pair(request)]
        if request.context:
            raise ValueError(f"a bare request has an empty context, got {request.context[:60]!r}")
        tokens = tuple(self.encode(request.continuation))
        if not tokens:
            raise ValueError("empty continuation in a bare request")
        return [((self.prefix_id,), tokens[:1])] + ([(tokens[:1], tokens[1:])] if len(tokens) > 1 else [])

    def _fit(self, pair: TokenPair) -> TokenPair:
        """Left-truncate a context so the forward input (context + continuation minus its last
        token) fits ``max_length`` tokens, as lm-evaluation-harness does (warns once)."""
        ctx, cont = pair
        if len(cont) > self.max_length:
            raise ConfigError(f"a continuation of {len(cont)} tokens does not fit model.max_length={self.max_length}")
        overflow = len(ctx) + len(cont) - 1 - self.max_length
        if overflow > 0:
            if not self._warned_truncation:
                log.warning("context truncated from the left to fit model.max_length=%d tokens", self.max_length)
                self._warned_truncation = True
            ctx = ctx[overflow:]
        return ctx, cont

    # ------------------------------------------------------------ model and cache
    def _cache_layout(self) -> tuple[int | None, bool]:
        """(smallest sliding window of any layer or None, whether every cache layer is a plain
        key/value layer whose tensors can be expanded and row-selected without copying the object)."""
        try:
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicSlidingWindowLayer

            layers = DynamicCache(config=self.model.config).layers
        except (ImportError, TypeError, ValueError, AttributeError):
            return None, False
        windows = [layer.sliding_window for layer in layers if getattr(layer, "is_sliding", False)]
        plain = bool(layers) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)
        return (min(windows) if windows else None), plain

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None, cache,
                 use_cache: bool, keep: int | torch.Tensor = 0, decoding: bool = False):
        """One model call; returns (logits, cache).  On CPU it runs under ``cpu_inference``
        (grouped key/value heads read in place; for a ``decoding`` step, the LM head in blocks).
        A cache of ``SharedPromptLayer``s runs the model's attention as ``shared_prompt_attention``."""
        shared = cache is not None and isinstance(cache.layers[0], shared_prompt.SharedPromptLayer)
        kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=use_cache,
                      logits_to_keep=keep, **({self._cache_kw: cache} if cache is not None else {}),
                      **({"shared_cache": cache} if shared else {}))
        with contextlib.ExitStack() as stack:
            if shared:
                stack.enter_context(shared_prompt.shared_prompt(self.model))
            if self.device.type == "cpu":  # on CUDA a masked GQA call would fall back to the math kernel
                stack.enter_context(cpu_inference(self.model, blocked_head=decoding))
            out = self.model(**kwargs)
        return out.logits, (getattr(out, self._cache_kw) if use_cache else None)

    def _shared_rows(self, cache, mask: torch.Tensor, k: int, room: int):
        """A new cache of ``SharedPromptLayer``s: ``cache``'s P rows once (``mask`` [P, Lp]: their padding),
        k rows each with ``room`` positions for new tokens."""
        new = copy.copy(cache)
        new.layers = [shared_prompt.SharedPromptLayer(layer.keys, layer.values, mask, k, room)
                      for layer in cache.layers]
        return new

    def _rows(self, cache, index: torch.Tensor | None = None, repeat: int = 1, room: int = 0):
        """A new cache holding rows ``index`` of ``cache`` (or each row ``repeat`` times, as a
        broadcast view; or, with ``room``, rows ``index`` in buffers that ``room`` more tokens
        fill in place); ``cache`` itself is left as it was."""
        if not self._plain_cache:
            new = copy.deepcopy(cache)
            if index is not None:
                new.batch_select_indices(index)
            else:
                new.batch_repeat_interleave(repeat)
            return new
        new = copy.copy(cache)
        new.layers = []
        for layer in cache.layers:
            layer = copy.copy(layer)
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                if room and index is not None and type(layer) is DynamicLayer:  # sliding layers crop: keep
                    layer = PreallocatedLayer(layer.keys.index_select(0, index), layer.values.index_select(0, index),
                                              room)
                elif index is not None:
                    layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
                else:
                    layer.keys = layer.keys.expand(layer.keys.shape[0] * repeat, *layer.keys.shape[1:])
                    layer.values = layer.values.expand(layer.values.shape[0] * repeat, *layer.values.shape[1:])
            new.layers.append(layer)
        return new

    # ------------------------------------------------------------------- scoring
    @torch.inference_mode()
    def _score_pairs(self, pairs: Sequence[TokenPair], sink: Sink) -> tuple[list[int], int]:
        """Run every pair's continuation predictions into ``sink``; returns each pair's index
        among the distinct items ``sink`` saw (a repeated pair is scored once) and their number."""
        index: dict[TokenPair, int] = {}
        items: list[_Item] = []
        where = []
        for pair in pairs:
            ctx, cont = self._fit(pair)
            if (ctx, cont) not in index:
                index[ctx, cont] = len(items)
                items.append(_Item(ctx + cont[:-1], len(ctx) - 1, cont))
            where.append(index[ctx, cont])
        if items:  # a tree mask cannot shift sliding windows where no input is longer than one
            share = self._window is None or max(len(it.x) for it in items) < self._window - 1
            with progress(total=len(items), desc="scoring", unit="req") as bar:  # distinct requests
                for stem_len, rows in _plan(items, share):
                    self._score_cluster(items, stem_len, rows, sink)
                    bar.update(sum(len(row) for row in rows))
        return where, len(items)

    def _chunks(self, units: list, width: Callable[[object], int], positions: Callable[[object], int],
                limit: int) -> list[list]:
        """Split ``units`` (sorted by ``width``, widest first) into consecutive forward passes of at
        most ``limit`` units and LOGIT_BUDGET logit values (a wider unit runs alone), minimising
        padded tokens plus PASS_COST tokens per pass: a dynamic programme over chunk ends."""
        per_pass = max(1, LOGIT_BUDGET // self.model.config.get_text_config().vocab_size)
        pass_cost = PASS_COST if self.device.type == "cpu" else PASS_COST_ACCELERATOR
        w, p = [width(u) for u in units], [positions(u) for u in units]
        best, start = [0.0] + [math.inf] * len(units), [0] * (len(units) + 1)
        for j in range(1, len(units) + 1):  # the chunk [i, j) is padded to w[i]
            n_pos = 0
            for i in range(j - 1, max(j - limit, 0) - 1, -1):
                n_pos += p[i]
                if n_pos > per_pass and i < j - 1:
                    break
                cost = best[i] + (j - i) * w[i] + pass_cost
                if cost < best[j]:
                    best[j], start[j] = cost, i
        chunks, j = [], len(units)
        while j:
            chunks.append(units[start[j]:j])
            j = start[j]
        return chunks[::-1]

    def _score_cluster(self, items: list[_Item], stem_len: int, rows: list[list[int]], sink: Sink) -> None:
        stem = None
        if stem_len:
            ids = torch.tensor([items[rows[0][0]].x[:stem_len]], device=self.device)
            stem = self._forward(ids, None, None, None, use_cache=True, keep=1)[1]
        trees = sorted((_tree(items, row, stem_len) for row in rows), key=lambda t: len(t.tokens), reverse=True)
        for batch in self._chunks(trees, lambda t: len(t.tokens), lambda t: len({n for *_, n in t.slots}),
                                  self.batch_size):
            self._score_trees(items, stem_len, stem, batch, sink)

    def _score_trees(self, items: list[_Item], stem_len: int, stem, batch: list[_Tree], sink: Sink) -> None:
        """One forward pass of a batch of rows (right padded) against the stem's cache.  Chains
        take a padding mask [b, stem + width]; otherwise each node attends to the stem and its
        ancestors through an additive mask [b, 1, width, stem + width] (padding: to itself)."""
        b, width = len(batch), max(len(t.tokens) for t in batch)
        ids = np.full((b, width), self.tokenizer.pad_token_id, dtype=np.int64)
        positions = np.full((b, width), stem_len, dtype=np.int64)
        keep = np.zeros((b, width), dtype=bool)
        chains = all(t.chain for t in batch)
        sees = np.zeros((b, stem_len + width) if chains else (b, width, stem_len + width), dtype=bool)
        for row, t in enumerate(batch):
            n = len(t.tokens)
            ids[row, :n] = t.tokens
            keep[row, [node for *_, node in t.slots]] = True
            if chains:
                positions[row, :n] = np.arange(stem_len, stem_len + n)
                sees[row, :stem_len + n] = True
                continue
            for v, p in enumerate(t.parents):  # parents come first: a node sees what its parent sees
                if p >= 0:
                    positions[row, v] = positions[row, p] + 1
                    sees[row, v] = sees[row, p]
                else:
                    sees[row, v, :stem_len] = True
                sees[row, v, stem_len + v] = True
            sees[row, range(n, width), range(stem_len + n, stem_len + width)] = True
        sees = torch.from_numpy(sees)
        mask = sees.long() if chains else torch.zeros(sees.shape, dtype=self.model.dtype).masked_fill_(
            ~sees, torch.finfo(self.model.dtype).min)[:, None]
        cache = self._rows(stem, repeat=b) if stem is not None else None
        logits, _ = self._forward(torch.from_numpy(ids).to(self.device), mask.to(self.device),
                                  torch.from_numpy(positions).to(self.device), cache, use_cache=cache is not None,
                                  keep=torch.from_numpy(keep).to(self.device))
        slot = keep.flatten().cumsum().reshape(b, width) - 1  # logits row of each kept node
        self._emit(items, [(m, pos, int(slot[row, node])) for row, t in enumerate(batch) for m, pos, node in t.slots],
                   logits, sink)

    def _emit(self, items: list[_Item], slots: list[tuple[int, int, int]], logits: torch.Tensor, sink: Sink) -> None:
        """Hand (item, continuation index, logits row) slots to the sink with their target tokens."""
        if slots:
            item, pos, row = (torch.tensor(c, device=self.device) for c in zip(*slots))
            target = torch.tensor([items[i].cont[p] for i, p, _ in slots], device=self.device)
            sink(item, pos, target, logits, row)

    def _sum_logprobs(self, pairs: Sequence[TokenPair]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, every token greedy) per pair, via logsumexp + gather."""
        parts: list[torch.Tensor] = []

        def sink(item, _pos, target, logits, row):
            picked, wrong = target_logprobs(logits.float(), row, target)
            parts.append(torch.stack([item.double(), picked.double(), wrong.double()]).cpu())

        where, n = self._score_pairs(pairs, sink)
        logprob, misses = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        if parts:
            item, picked, wrong = torch.cat(parts, 1)
            logprob.index_add_(0, item.long(), picked)
            misses.index_add_(0, item.long(), wrong)
        return [(float(logprob[i]), bool(misses[i] == 0)) for i in where]

    def token_logprobs(self, pairs: Sequence[TokenPair]) -> list[torch.Tensor]:
        """Full next-token log-distributions [m, vocab] (fp32, CPU) for each pair's continuation."""
        found: dict[int, dict[int, torch.Tensor]] = defaultdict(dict)

        def sink(item, pos, _target, logits, row):
            logits = logits.float()
            logprobs = (logits - row_logsumexp(logits)[0]).cpu()  # more exact than log_softmax
            for i, p, r in zip(item.tolist(), pos.tolist(), row.tolist()):
                found[i][p] = logprobs[r]

        where, _ = self._score_pairs(pairs, sink)
        out = [torch.stack([found[i][p] for p in range(len(found[i]))]) for i in where]
        _require_finite(out, lambda i: self.decode(pairs[i][0] + pairs[i][1]), "next-token log-probabilities")
        return out

    def loglikelihood(self, requests: Sequence[Request]) -> list[Loglikelihood]:
        groups = [self.token_pairs(r) for r in requests]
        pairs = [p for g in groups for p in g]
        sums = self._sum_logprobs(pairs)
        answers = join_parts([len(g) for g in groups],
                             [Loglikelihood(lp, greedy, len(cont)) for (lp, greedy), (_, cont) in zip(sums, pairs)])
        _require_finite(torch.tensor([a.logprob for a in answers], dtype=torch.float64).view(-1, 1),
                        lambda i: requests[i].context + requests[i].continuation, "log-likelihood")
        return answers

    def rolling_windows(self, text: str, max_length: int | None = None, stride: int | None = None) -> list[TokenPair]:
        """Split ``text`` (after the sentence-start token) into (context, scored tokens) windows
        of at most ``max_length`` tokens; consecutive windows overlap by ``max_length - stride``
        tokens of context and every token is scored once."""
        max_length = min(max_length or self.max_length, self.max_length)
        stride = stride or max_length
        if not 0 < stride <= max_length:
            raise ConfigError(f"rolling stride must be in (0, max_length={max_length}], got {stride}")
        tokens = [self.prefix_id] + self.encode(text)
        windows, scored_upto = [], 1
        for begin in range(0, len(tokens) - 1, stride):
            end = min(begin + max_length + 1, len(tokens))
            new_from = max(scored_upto, begin + 1)
            if new_from < end:
                windows.append((tuple(tokens[begin:new_from]), tuple(tokens[new_from:end])))
                scored_upto = end
            if end == len(tokens):
                break
        return windows

    def loglikelihood_rolling(self, texts: Sequence[str], max_length: int | None = None,
                              stride: int | None = None) -> list[tuple[float, int]]:
        windows, owner = [], []
        for i, text in enumerate(texts):
            for w in self.rolling_windows(text, max_length, stride):
                windows.append(w)
                owner.append(i)
        sums = self._sum_logprobs(windows)
        totals = [[0.0, 0] for _ in texts]
        for i, (s, _), (_, cont) in zip(owner, sums, windows):
            totals[i][0] += s
            totals[i][1] += len(cont)
        _require_finite(torch.tensor([s for s, _ in totals], dtype=torch.float64).view(-1, 1),
                        lambda i: texts[i], "rolling log-likelihood")
        return [(s, n) for s, n in totals]

    # ------------------------------------------------------------- hidden states
    def _final_states(self, texts: Sequence[str], start_token: bool = True):
        """Per batch of ``batch_size`` texts: (each text's ids, after the start token when
        ``start_token``, truncated to ``max_length``; mask [b, T]; final hidden states [b, T, H]
        after ``hidden_transform``)."""
        decoder = self.model.get_decoder()
        head = [self.prefix_id] if start_token else []
        for start in range(0, len(texts), self.batch_size):
            batch = [head + self.encode(t)[: self.max_length - len(head)] for t in texts[start:start + self.batch_size]]
            if not all(batch):
                raise ValueError("hidden_states without a start token needs non-empty texts")
            width = max(len(b) for b in batch)
            ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, device=self.device)
            mask = torch.zeros((len(batch), width), dtype=torch.long, device=self.device)
            for row, b in enumerate(batch):
                ids[row, :len(b)] = torch.tensor(b)
                mask[row, :len(b)] = 1
            h = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            if self.hidden_transform is not None:
                h = self.hidden_transform(h)
            yield batch, mask, h

    @torch.inference_mode()
    def hidden_states(self, texts: Sequence[str], start_token: bool = True) -> torch.Tensor:
        pooled = []
        for _, mask, h in self._final_states(texts, start_token):
            text_mask = mask.clone()
            if start_token:
                text_mask[:, 0] = 0  # pool over the text's tokens, not the sentence-start token
                text_mask[text_mask.sum(1) == 0, 0] = 1  # an empty text pools the start token
            w = text_mask.unsqueeze(-1).to(h.dtype)
            pooled.append(((h * w).sum(1) / w.sum(1)).float().cpu())
        out = torch.cat(pooled) if pooled else torch.zeros(0, self.model.config.hidden_size)
        _require_finite(out, lambda i: texts[i], "hidden states")
        return out

    @torch.inference_mode()
    def per_token_hidden_states(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for batch, _, h in self._final_states(texts):
            for row, b in enumerate(batch):
                out.append((torch.tensor(b[1:]), h[row, :len(b) - 1].float().cpu()))
        _require_finite([states for _, states in out], lambda i: texts[i], "hidden states")
        return out

    def lm_head_rows(self, ids: Sequence[int]) -> torch.Tensor:
        return self.model.get_output_embeddings().weight[list(ids)].detach().float().cpu()

    # ---------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], spec: GenerationSpec) -> list[list[str]]:
        return self.sample([[p] for p in prompts], spec)

    @torch.inference_mode()
    def sample(self, prompt_variants: Sequence[Sequence[str]], spec: GenerationSpec,
               combine: Combine = _plain) -> list[list[str]]:
        """Decode ``spec.num_samples`` continuations per prompt.  Each prompt comes as V text
        variants (variant 0 is the prompt itself); all variants advance with the same sampled
        token, chosen from ``combine`` of their next-token log-probs.  V = 1: plain sampling."""
        n_var = len(prompt_variants[0]) if prompt_variants else 1
        if any(len(v) != n_var for v in prompt_variants):
            raise ValueError("every prompt needs the same number of variants")
        per_batch = max(1, min(self.batch_size // n_var, DECODE_ROWS // (n_var * spec.rows_per_prompt)))
        results: list[list[str]] = []
        with progress(total=len(prompt_variants) * spec.num_samples, desc="sampling", unit="cont") as bar:
            for start in range(0, len(prompt_variants), per_batch):
                batch = prompt_variants[start:start + per_batch]
                tokens = self._sample_batch(batch, spec, combine, first_index=start)
                results.extend([[self.tokenizer.decode(t, skip_special_tokens=True) for t in row] for row in tokens])
                bar.update(sum(len(row) for row in tokens))
        return results

    def _sample_batch(self, batch, spec: GenerationSpec, combine: Combine, first_index: int) -> list[list[list[int]]]:
        beam = spec.num_beams > 1
        B, V, k = len(batch), len(batch[0]), spec.rows_per_prompt  # k rows per (prompt, variant)
        budget = self.max_length - spec.max_new_tokens
        seqs = [[self.prefix_id] + self.encode(text)[-(budget - 1):] for variants in batch for text in variants]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):  # left padding
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(ids, mask, positions, None, use_cache=True, keep=1)
        if self.share_prompt and k > 1 and (self._window is None or width + spec.max_new_tokens <= self._window):
            cache = self._shared_rows(cache, mask, k, room=spec.max_new_tokens)
        else:
            cache = self._rows(cache, torch.arange(len(seqs), device=self.device).repeat_interleave(k),
                               room=spec.max_new_tokens)
        mask = mask.repeat_interleave(k, 0)  # rows: (prompt, variant, sample)
        next_pos = positions[:, -1:].repeat_interleave(k, 0) + 1
        logits = logits[:, -1].float().repeat_interleave(k, 0)
        uniforms = torch.stack([torch.rand(spec.max_new_tokens, k, generator=torch.Generator().manual_seed(
            spec.seed * 1_000_003 + first_index + b)) for b in range(B)], 1).to(self.device)  # [steps, B, k]
        eos = torch.tensor(sorted({t for t in (self.tokenizer.eos_token_id, self.model.config.eos_token_id)
                                   if isinstance(t, int)}), dtype=torch.long, device=self.device)
        done = torch.zeros(B, k, dtype=torch.bool, device=self.device)
        beam_scores = torch.full((B, k), -math.inf, device=self.device)
        beam_scores[:, 0] = 0.0  # the beams start identical: only the first one extends at step 0
        generated = torch.zeros(B, k, 0, dtype=torch.long, device=self.device)
        for step in range(spec.max_new_tokens):
            if beam:  # beams add log-probs; as in HF, end-of-text is masked after normalising, not renormalised
                logits = torch.log_softmax(logits, -1)
            if step < spec.min_new_tokens:
                logits[:, eos] = -math.inf
            scores = logits.view(B, V, k, -1)
            scores = scores[:, 0] if combine is _plain else combine(torch.log_softmax(scores, -1))
            if beam:
                chosen, origin, beam_scores = _beam_step(scores, beam_scores)
                generated = generated.gather(1, origin[..., None].expand_as(generated))
                rows = (torch.arange(B * V, device=self.device)[:, None] * k + origin.repeat_interleave(V, 0)).view(-1)
                cache.batch_select_indices(rows)  # rows (prompt, variant, beam) continue their origin beam
            else:
                chosen = self._choose(scores, spec, uniforms[step])  # [B, k]
            chosen = chosen.masked_fill(done, self.tokenizer.pad_token_id)
            generated = torch.cat([generated, chosen[..., None]], -1)
            done |= torch.isin(chosen, eos)
            if step == spec.max_new_tokens - 1 or bool(done.all()):
                break
            feed = chosen[:, None, :].expand(B, V, k).reshape(-1, 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
            logits = scores = None  # this step's [rows, vocab] is freed before the next one is made
            logits, cache = self._forward(feed, mask, next_pos, cache, use_cache=True, decoding=True)
            next_pos = next_pos + 1
            logits = logits[:, -1].float()
        eos_ids = set(eos.tolist())
        if beam:  # the best beam (beam_scores are sorted, best first)
            generated = generated[:, :1]
        return [[self._strip(row, eos_ids) for row in prompt] for prompt in generated.tolist()]

    @staticmethod
    def _strip(tokens: list[int], eos: set[int]) -> list[int]:
        for i, t in enumerate(tokens):
            if t in eos:
                return tokens[:i]
        return tokens

    @staticmethod
    def _choose(scores: torch.Tensor, spec: GenerationSpec, uniforms: torch.Tensor) -> torch.Tensor:
        """Greedy argmax, or nucleus sampling by inverse CDF with the given uniforms.
        scores: log-probs up to a per-row constant [B, k, vocab]; uniforms [B, k] -> tokens [B, k]."""
        if not spec.do_sample:
            return scores.argmax(-1)
        flat = scores.reshape(-1, scores.shape[-1]).float()
        if spec.temperature != 1.0:
            flat = flat / spec.temperature
        return nucleus(flat, spec.top_p, uniforms.reshape(-1)).view(scores.shape[:-1])


def _beam_step(logprobs: torch.Tensor, beam_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One beam-search step.  logprobs [B, K, vocab] of each beam's next token (-inf: banned), beam_scores [B, K]
    summed log-probs so far -> (token [B, K], origin beam [B, K], new scores [B, K]) of the K best
    (beam, token) extensions per prompt, best first."""
    B, K, vocab = logprobs.shape
    best, index = (beam_scores[..., None] + logprobs).view(B, K * vocab).topk(K, -1)
    return index % vocab, index // vocab, best

