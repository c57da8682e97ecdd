"""``ScoringLM`` over a Hugging Face causal LM: batched, shared-context scoring and
batched k-sample generation, all under ``torch.inference_mode()``.

Scoring engine.  Requests are tokenised as lm-evaluation-harness does (trailing
context whitespace moves to the continuation; the continuation's tokens are the
whole text's tokens after the context's; an empty context is the sentence-start
token), then grouped by context.  Each distinct context runs once; its key/value
cache is expanded over batches of its continuations (sorted by length, right
padded), so a question with twelve answer choices costs one context pass instead
of twelve.  Results equal scoring every request alone up to float rounding.

Generation engine.  Prompts are left padded and encoded once per batch; the cache
is expanded to k samples per prompt and decoded token by token with nucleus
sampling.  Each prompt draws its uniforms from its own generator seeded by
(spec.seed, prompt index), so continuations do not depend on batch composition.

Debiasing hooks.  ``hidden_transform`` maps final hidden states [..., H] -> [..., H]
before the LM head (INLP, SentenceDebias); it applies to scoring, generation and
``hidden_states``.  ``token_logprobs`` and ``sample`` expose full next-token
distributions and a combine step for decoding-time methods (Self-Debias).
"""
from __future__ import annotations

import copy
import logging
from collections import defaultdict
from typing import Callable, Sequence

import torch

from bench.errors import ConfigError
from bench.lm import GenerationSpec, Loglikelihood, Request
from bench.models import LoadedModel

log = logging.getLogger(__name__)

TokenPair = tuple[tuple[int, ...], tuple[int, ...]]  # (context ids, continuation ids)
# combine(logprobs [B, V_variants, k, vocab]) -> logprobs [B, k, vocab]: how variant streams decide a token
Combine = Callable[[torch.Tensor], torch.Tensor]


def _plain(logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs[:, 0]


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

    def encode_pair(self, request: Request) -> TokenPair:
        """lm-evaluation-harness tokenisation of a (context, continuation) request."""
        context, continuation = request
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

    def _fit(self, pair: TokenPair) -> TokenPair:
        """Left-truncate a context so context + continuation fits the window (warns once)."""
        ctx, cont = pair
        if len(cont) >= self.max_length:
            raise ConfigError(f"a continuation of {len(cont)} tokens does not fit model.max_length={self.max_length}")
        if len(ctx) + len(cont) > self.max_length:
            if not self._warned_truncation:
                log.warning("context truncated from the left to fit model.max_length=%d tokens", self.max_length)
                self._warned_truncation = True
            ctx = ctx[len(ctx) + len(cont) - self.max_length:]
        return ctx, cont

    # ------------------------------------------------------------------- scoring
    @torch.inference_mode()
    def _score_pairs(self, pairs: Sequence[TokenPair], reduce: Callable[[torch.Tensor, torch.Tensor], object]) -> list:
        """For each (context, continuation) pair call ``reduce(logprobs [m, vocab], targets [m])``
        on the log-softmax rows that predict the continuation's m tokens; results in input order."""
        pairs = [self._fit(p) for p in pairs]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (ctx, _) in enumerate(pairs):
            groups[ctx].append(i)
        out: list = [None] * len(pairs)
        for ctx in sorted(groups, key=len, reverse=True):
            members = sorted(groups[ctx], key=lambda i: len(pairs[i][1]), reverse=True)
            ctx_ids = torch.tensor([ctx], device=self.device)
            ctx_out = self.model(input_ids=ctx_ids, use_cache=True, logits_to_keep=1)
            last = ctx_out.logits[:, -1:].float()  # predicts each continuation's first token
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                conts = [pairs[i][1] for i in chunk]
                logprobs = self._continuation_logprobs(ctx_out.past_key_values, len(ctx), last, conts)
                for row, i in enumerate(chunk):
                    m = len(conts[row])
                    out[i] = reduce(logprobs[row, :m], torch.tensor(conts[row], device=self.device))
        return out

    def _continuation_logprobs(self, cache, ctx_len: int, last_logits: torch.Tensor,
                               conts: list[tuple[int, ...]]) -> torch.Tensor:
        """log-softmax [n, max_m, vocab] predicting each continuation token given the cached context."""
        n, width = len(conts), max(len(c) for c in conts)
        logits = last_logits.expand(n, 1, -1)
        if width > 1:
            ids = torch.full((n, width - 1), self.tokenizer.pad_token_id, device=self.device)
            mask = torch.zeros((n, ctx_len + width - 1), dtype=torch.long, device=self.device)
            mask[:, :ctx_len] = 1
            for row, cont in enumerate(conts):
                ids[row, :len(cont) - 1] = torch.tensor(cont[:-1])
                mask[row, ctx_len:ctx_len + len(cont) - 1] = 1
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(n)
            step = self.model(input_ids=ids, attention_mask=mask, past_key_values=past, use_cache=True)
            logits = torch.cat([logits, step.logits.float()], dim=1)
        return torch.log_softmax(logits, dim=-1)

    def token_logprobs(self, pairs: Sequence[TokenPair]) -> list[torch.Tensor]:
        """Full next-token log-distributions [m, vocab] (fp32, CPU) for each pair's continuation."""
        return self._score_pairs(pairs, lambda lp, _t: lp.cpu())

    def loglikelihood(self, requests: Sequence[Request]) -> list[Loglikelihood]:
        def reduce(lp: torch.Tensor, targets: torch.Tensor) -> Loglikelihood:
            picked = lp.gather(-1, targets[:, None])[:, 0]
            greedy = bool((lp.argmax(-1) == targets).all())
            return Loglikelihood(float(picked.sum()), greedy, len(targets))

        return self._score_pairs([self.encode_pair(r) for r in requests], reduce)

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
        sums = self._score_pairs(windows, lambda lp, t: float(lp.gather(-1, t[:, None]).sum()))
        totals = [[0.0, 0] for _ in texts]
        for i, s, (_, cont) in zip(owner, sums, windows):
            totals[i][0] += s
            totals[i][1] += len(cont)
        return [(s, n) for s, n in totals]

    # ------------------------------------------------------------- hidden states
    @torch.inference_mode()
    def hidden_states(self, texts: Sequence[str]) -> torch.Tensor:
        decoder = self.model.get_decoder()
        pooled = []
        for start in range(0, len(texts), self.batch_size):
            batch = [[self.prefix_id] + self.encode(t)[: self.max_length - 1] for t in texts[start:start + self.batch_size]]
            width = max(len(b) for b in batch)
            ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, device=self.device)
            mask = torch.zeros((len(batch), width), dtype=torch.long, device=self.device)
            for row, b in enumerate(batch):
                ids[row, :len(b)] = torch.tensor(b)
                mask[row, :len(b)] = 1
            h = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            if self.hidden_transform is not None:
                h = self.hidden_transform(h)
            text_mask = mask.clone()
            text_mask[:, 0] = 0  # pool over the text's tokens, not the sentence-start token
            text_mask[text_mask.sum(1) == 0, 0] = 1  # an empty text pools the start token
            w = text_mask.unsqueeze(-1).to(h.dtype)
            pooled.append(((h * w).sum(1) / w.sum(1)).float().cpu())
        return torch.cat(pooled) if pooled else torch.zeros(0, self.model.config.hidden_size)

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
        k = spec.num_samples
        per_batch = max(1, self.batch_size // n_var)
        results: list[list[str]] = []
        for start in range(0, len(prompt_variants), per_batch):
            batch = prompt_variants[start:start + per_batch]
            tokens = self._sample_batch(batch, spec, combine, first_index=start)
            results.extend([[self.tokenizer.decode(t, skip_special_tokens=True) for t in row] for row in tokens])
        return results

    def _sample_batch(self, batch, spec: GenerationSpec, combine: Combine, first_index: int) -> list[list[list[int]]]:
        B, V, k = len(batch), len(batch[0]), spec.num_samples
        budget = self.max_length - spec.max_new_tokens
        seqs = [[self.prefix_id] + self.encode(text)[-(budget - 1):] for variants in batch for text in variants]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, device=self.device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=self.device)
        for row, s in enumerate(seqs):  # left padding
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(k)  # rows: (prompt, variant, sample)
        mask = mask.repeat_interleave(k, 0)
        next_pos = positions[:, -1:].repeat_interleave(k, 0) + 1
        logits = out.logits[:, -1].float().repeat_interleave(k, 0)
        generators = [torch.Generator().manual_seed(spec.seed * 1_000_003 + first_index + b) for b in range(B)]
        eos = {t for t in (self.tokenizer.eos_token_id, self.model.config.eos_token_id) if isinstance(t, int)}
        done = torch.zeros(B, k, dtype=torch.bool)
        generated = torch.zeros(B, k, 0, dtype=torch.long)
        for step in range(spec.max_new_tokens):
            logprobs = torch.log_softmax(logits, -1).view(B, V, k, -1)
            chosen = self._choose(combine(logprobs).cpu(), spec, generators)  # [B, k]
            chosen = torch.where(done, torch.full_like(chosen, self.tokenizer.pad_token_id), chosen)
            generated = torch.cat([generated, chosen[..., None]], -1)
            done |= torch.isin(chosen, torch.tensor(sorted(eos))) if eos else done
            if bool(done.all()) or step == spec.max_new_tokens - 1:
                break
            feed = chosen[:, None, :].expand(B, V, k).reshape(-1, 1).to(self.device)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
            out = self.model(input_ids=feed, attention_mask=mask, position_ids=next_pos,
                             past_key_values=cache, use_cache=True)
            cache, next_pos = out.past_key_values, next_pos + 1
            logits = out.logits[:, -1].float()
        return [[self._strip(row.tolist(), eos) for row in prompt] for prompt in generated]

    def _strip(self, tokens: list[int], eos: set[int]) -> list[int]:
        for i, t in enumerate(tokens):
            if t in eos:
                return tokens[:i]
        return tokens

    @staticmethod
    def _choose(logprobs: torch.Tensor, spec: GenerationSpec, generators: list[torch.Generator]) -> torch.Tensor:
        """Greedy argmax, or nucleus sampling by inverse CDF with per-prompt uniforms. [B, k, V] -> [B, k]."""
        if not spec.do_sample:
            return logprobs.argmax(-1)
        probs = torch.softmax(logprobs / spec.temperature, -1)
        sorted_p, order = probs.sort(-1, descending=True)
        cum = sorted_p.cumsum(-1)
        sorted_p = torch.where(cum - sorted_p < spec.top_p, sorted_p, torch.zeros_like(sorted_p))
        cdf = sorted_p.cumsum(-1)
        u = torch.stack([torch.rand(logprobs.shape[1], generator=g) for g in generators])[..., None] * cdf[..., -1:]
        index = torch.searchsorted(cdf, u).clamp(max=cdf.shape[-1] - 1)
        return order.gather(-1, index)[..., 0]
