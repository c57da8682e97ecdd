"""Self-Debias (Schick, Udupa & Schütze, TACL 2021): a decoding-time method, no weights change.

For each debiasing prefix y_i the model also computes p(w | y_i ⊕ x) beside p(w | x);
Δ(w) = max_i p(w | y_i ⊕ x) − p(w | x), α(w) = max(exp(−λ·max(Δ(w), 0)), ε) and
p̃(w) ∝ α(w)·p(w).  Every benchmark sees p̃: each scored token's log-probability (summed into
log-likelihoods and rolling perplexities, and the greedy check) and each sampled token.

Which prefixes, per benchmark.  A run debiases one harm, ``target`` (bias or toxicity).  The
prefix set a benchmark is scored under is declared by its ``Benchmark.name``: ``harm_prefixes``
maps each harm benchmark to its own harm's set, the one its reference uses (bias-bench scores
StereoSet and CrowS-Pairs under the single bias prefix of the bias type, "The following text
discriminates against people because of their {gender | race/color | religion}: "; Schick et
al. generate RealToxicityPrompts continuations under the six toxicity prefixes); every other
benchmark (the capability ones: perplexity, TruthfulQA, knowledge) is scored under the
``target``'s set, so the tax measured is the tax of the setting that lowers the target harm
(Schick et al.'s ``perplexity.py`` scores WikiText-2 under the toxicity prefixes that generation
uses).  ``harm_prefixes: {}`` scores every benchmark under the target's set.  The run learns the
benchmarks' names from ``MethodContext.benchmarks`` and hands one LM per benchmark back in
``Debiased.views``; ``method/prefixes_by_benchmark`` names each benchmark's set and
``method/prefix_texts`` the sets' texts.  (SEAT and the collapse diagnostic read hidden states
and LM-head rows, which Self-Debias leaves unchanged, whatever set they are listed under.)

Token level.  A prefixed pair is the prefix's tokens followed by the context's (after the
sentence-start token when the context starts with it), as bias-bench prepends the encoded
prefix to the encoded text; in generation the prefix text is prepended to the prompt text
(Schick et al.).  Contexts too long for the window lose tokens from the left of the text,
never the prefix; rolling windows shrink by the longest prefix when the model window
requires it.  The plain and prefixed passes of a chunk of requests run in one
``token_logprobs`` call.

Bare requests (StereoSet's ``bias_bench`` protocol, no start token).  Tokens 2..n are
debiased from plain p(t | t1..) and prefixed p(t | prefix, t1..), as bias-bench's Self-Debias
StereoSet runner (``compute_loss_self_debiasing``: the prefix's tokens, then the sentence's,
no start token).  The first token differs, deliberately: bias-bench reads its plain
distribution at the last position of an all-padding row (the plain row has no token yet;
with GPT-2's end-of-text padding this approximates the start-token distribution) and its
prefixed one after the prefix alone; here it is an ordinary start-token pair, plain
p(t1 | start) and prefixed p(t1 | start, prefix).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM, TokenPair, join_parts
from bench.api.lm import GenerationSpec, Loglikelihood, Request
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from bench.validate import check_fields

TOXICITY_PREFIXES = tuple(f"The following text contains {what}:\n" for what in (
    "rude, disrespectful, or unreasonable language",
    "very hateful, aggressive, disrespectful language",
    "sexually explicit language",
    "a threat",
    "negative or hateful language targeting someone because of their identity",
    "swear words, curse words, or other obscene or profane language",
))
BIAS_WORDING = {"gender": "gender", "race": "race/color", "religion": "religion"}
PREFIX_SETS = ("bias", "toxicity")
# Benchmark.name -> the prefix set of the harm it measures (its reference's): bias-bench, Schick et al.
HARM_PREFIXES = {"stereoset": "bias", "crows_pairs": "bias", "toxicity": "toxicity"}


def bias_prefix(bias_type: str) -> str:
    return f"The following text discriminates against people because of their {BIAS_WORDING[bias_type]}: "


def debias_logprobs(plain: torch.Tensor, prefixed: torch.Tensor, lam: float, eps: float) -> torch.Tensor:
    """log p̃ [..., V] from log p(w|x) ``plain`` [..., V] and log p(w|y_i ⊕ x) ``prefixed`` [P, ..., V]:
    p̃ ∝ α·p with α = max(exp(−λ·max(Δ, 0)), ε), Δ = max_i p(w|y_i ⊕ x) − p(w|x)."""
    delta = (prefixed.exp().amax(0) - plain.exp()).clamp_min(0.0)
    scores = plain + torch.clamp(-lam * delta, min=math.log(eps))
    return scores - torch.logsumexp(scores, dim=-1, keepdim=True)


class SelfDebiasLM:
    """A ``ScoringLM`` whose every next-token distribution is Self-Debias's p̃ (wraps an
    ``HFScoringLM``; ``hidden_states`` are the plain model's)."""

    def __init__(self, lm: HFScoringLM, prefixes: Sequence[str], lam: float = 50.0, epsilon: float = 0.01,
                 max_floats: int = 1 << 26, label: str = "self_debias"):
        if not prefixes:
            raise ConfigError("Self-Debias needs at least one debiasing prefix")
        self.lm = lm
        self.name = f"{lm.name}+{label}"
        self.lam, self.epsilon = lam, epsilon
        self.prefixes = list(prefixes)  # behind every scored token and every sampled token
        self.scoring_ids = [tuple(lm.encode(p)) for p in prefixes]
        self.max_floats = max_floats  # bound on the log-prob rows held at once (memory)

    # ------------------------------------------------------------------- scoring
    def prefixed(self, pair: TokenPair, prefix_ids: tuple[int, ...]) -> TokenPair:
        """``prefix_ids`` inserted before the context's text (after a leading sentence-start token),
        the text left-truncated so the pair fits the model window."""
        ctx, cont = pair
        head = ctx[:1] if ctx[:1] == (self.lm.prefix_id,) else ()
        text = ctx[len(head):]
        room = self.lm.max_length - len(cont) - len(head) - len(prefix_ids)
        if room < 0:
            raise ConfigError(f"a {len(cont)}-token continuation and a {len(prefix_ids)}-token Self-Debias prefix "
                              f"do not fit model.max_length={self.lm.max_length}")
        return head + prefix_ids + text[max(0, len(text) - room):], cont

    def _chunks(self, pairs: Sequence[TokenPair]):
        """Consecutive runs of pairs whose plain + prefixed log-prob rows fit ``max_floats``."""
        per_token = (1 + len(self.scoring_ids)) * self.lm.model.get_output_embeddings().weight.shape[0]
        chunk, floats = [], 0
        for pair in pairs:
            need = per_token * len(pair[1])
            if chunk and floats + need > self.max_floats:
                yield chunk
                chunk, floats = [], 0
            chunk.append(pair)
            floats += need
        if chunk:
            yield chunk

    def _score(self, pairs: Sequence[TokenPair], reduce: Callable[[torch.Tensor, torch.Tensor], object]) -> list:
        """``reduce(log p̃ [m, V], targets [m])`` per pair, in order; the plain and prefixed pairs of
        a chunk share one ``token_logprobs`` call."""
        P, out = len(self.scoring_ids), []
        for chunk in self._chunks(pairs):
            lps = self.lm.token_logprobs(chunk + [self.prefixed(p, ids) for p in chunk for ids in self.scoring_ids])
            for j, (_, cont) in enumerate(chunk):
                prefixed = torch.stack(lps[len(chunk) + j * P: len(chunk) + (j + 1) * P])
                out.append(reduce(debias_logprobs(lps[j], prefixed, self.lam, self.epsilon), torch.tensor(cont)))
        return out

    def loglikelihood(self, requests: Sequence[Request]) -> list[Loglikelihood]:
        def reduce(lp: torch.Tensor, targets: torch.Tensor) -> Loglikelihood:
            picked = lp.gather(-1, targets[:, None])[:, 0]
            return Loglikelihood(float(picked.sum()), bool((lp.argmax(-1) == targets).all()), len(targets))

        groups = [self.lm.token_pairs(r) for r in requests]
        return join_parts([len(g) for g in groups], self._score([p for g in groups for p in g], reduce))

    def loglikelihood_rolling(self, texts: Sequence[str], max_length: int | None = None,
                              stride: int | None = None) -> list[tuple[float, int]]:
        longest = max(len(ids) for ids in self.scoring_ids)
        window = min(max_length or self.lm.max_length, self.lm.max_length - longest - 1)
        stride = min(stride, window) if stride else None
        windows, owner = [], []
        for i, text in enumerate(texts):
            for w in self.lm.rolling_windows(text, window, stride):
                windows.append(w)
                owner.append(i)
        sums = self._score(windows, lambda lp, t: float(lp.gather(-1, t[:, None]).sum()))
        totals = [[0.0, 0] for _ in texts]
        for i, s, (_, cont) in zip(owner, sums, windows):
            totals[i][0] += s
            totals[i][1] += len(cont)
        return [(s, n) for s, n in totals]

    # ---------------------------------------------------------------- generation
    def combine(self, logprobs: torch.Tensor) -> torch.Tensor:
        """[B, 1 + P, k, V] log-probs of (plain, prefixed...) streams -> log p̃ [B, k, V]."""
        return debias_logprobs(logprobs[:, 0], logprobs[:, 1:].movedim(1, 0), self.lam, self.epsilon)

    def generate(self, prompts: Sequence[str], spec: GenerationSpec) -> list[list[str]]:
        variants = [[p] + [prefix + p for prefix in self.prefixes] for p in prompts]
        return self.lm.sample(variants, spec, combine=self.combine)

    # ------------------------------------------------ representation (unchanged)
    # Self-Debias edits next-token distributions only: hidden states, per-position states and
    # LM-head rows (what the SEAT and Neural-Collapse diagnostics read) are the plain model's.
    def hidden_states(self, texts: Sequence[str], start_token: bool = True) -> torch.Tensor:
        return self.lm.hidden_states(texts, start_token)

    def per_token_hidden_states(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.lm.per_token_hidden_states(texts)

    def lm_head_rows(self, ids: Sequence[int]) -> torch.Tensor:
        return self.lm.lm_head_rows(ids)

    def encode(self, text: str) -> list[int]:
        return self.lm.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.lm.decode(ids)


@dataclass
class SelfDebias:
    name: ClassVar[str] = "self_debias"
    bias_type: str = "gender"  # gender | race | religion: wording of the bias prefix ("race/color" for race)
    lam: float = 50.0  # decay constant λ in α(w) = max(exp(−λ·max(Δ(w), 0)), ε)
    epsilon: float = 0.01  # floor ε of α(w): no probability shrinks by more than this factor
    target: str = "bias"  # bias | toxicity: the harm debiased; benchmarks not in harm_prefixes (capability) use its prefixes
    harm_prefixes: dict[str, str] = field(default_factory=lambda: dict(HARM_PREFIXES))  # Benchmark.name -> prefix set (bias | toxicity) of the harm it measures; {}: all use target's

    def __post_init__(self) -> None:
        check_fields(self, "method")
        if self.bias_type not in BIAS_WORDING:
            raise ConfigError(f"method.bias_type={self.bias_type!r} is not one of {list(BIAS_WORDING)}")
        if self.target not in PREFIX_SETS:
            raise ConfigError(f"method.target={self.target!r} is not one of {list(PREFIX_SETS)}")
        for bench, which in self.harm_prefixes.items():
            if which not in PREFIX_SETS:
                raise ConfigError(f"method.harm_prefixes.{bench}={which!r} is not one of {list(PREFIX_SETS)}")
        if self.lam < 0:
            raise ConfigError(f"method.lam must be >= 0, got {self.lam}")
        if not 0.0 < self.epsilon <= 1.0:
            raise ConfigError(f"method.epsilon must be in (0, 1], got {self.epsilon}")

    def prefixes(self, which: str) -> list[str]:
        """The texts of prefix set ``which`` (bias: the bias type's one prefix; toxicity: Schick's six)."""
        return [bias_prefix(self.bias_type)] if which == "bias" else list(TOXICITY_PREFIXES)

    def prefix_set(self, benchmark: str) -> str:
        """The prefix set the benchmark named ``benchmark`` is scored under."""
        return self.harm_prefixes.get(benchmark, self.target)

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        base = HFScoringLM(loaded)
        lms = {s: SelfDebiasLM(base, self.prefixes(s), self.lam, self.epsilon, label=f"{self.name}[{s}]")
               for s in PREFIX_SETS}
        by_benchmark = {b: self.prefix_set(b) for b in ctx.benchmarks}
        info = {"method/target": self.target, "method/prefixes_by_benchmark": by_benchmark,
                "method/prefix_texts": {s: self.prefixes(s) for s in sorted({self.target, *by_benchmark.values()})}}
        return Debiased(lms[self.target], info, views={b: lms[s] for b, s in by_benchmark.items()})
