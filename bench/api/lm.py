"""The scoring-LM protocol every benchmark talks to, and its value types.

Benchmarks never touch a model directly: they build requests, make one call on a
``ScoringLM`` and score the answers; the few that read representations ask a
``RepresentationLM``.  Debiasing methods that act at inference time
(Self-Debias, INLP, SentenceDebias) are ``ScoringLM`` implementations wrapping
another one, so every benchmark sees the debiased distribution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence, runtime_checkable

import torch


class Request(NamedTuple):
    """Score ``continuation`` given ``context``.  An empty context means "start of text":
    the continuation's first token is conditioned on the model's BOS / end-of-text token.

    ``bare`` (empty context only) scores the continuation as a token sequence with no start
    token in front, as bias-bench scores StereoSet with GPT-2: its first token's probability is
    read from the model run on the start token alone, and token i (i >= 2) is conditioned on the
    continuation's tokens 1..i-1 only."""

    context: str
    continuation: str
    bare: bool = False  # empty context only: no start token before the continuation's tokens (see above)


class Loglikelihood(NamedTuple):
    """Answer to one ``Request``."""

    logprob: float  # sum of log p(token) over the continuation's tokens (nats)
    is_greedy: bool  # every continuation token is the argmax of its distribution
    n_tokens: int  # number of continuation tokens scored


@dataclass(frozen=True)
class GenerationSpec:
    """How to continue a prompt: nucleus sampling of ``num_samples`` continuations, greedy
    decoding, or beam search (``num_beams`` > 1: the highest-scoring beam by summed
    log-probability; fixed-length continuations only, see ``min_new_tokens``)."""

    max_new_tokens: int = 20  # tokens generated per continuation
    num_samples: int = 1  # continuations per prompt (k)
    do_sample: bool = True  # False: greedy decoding or beam search (then num_samples must be 1)
    num_beams: int = 1  # > 1: beam search with this many beams (needs do_sample=false, min_new_tokens=max_new_tokens)
    min_new_tokens: int = 0  # end-of-text cannot be generated before this many new tokens
    top_p: float = 0.9  # nucleus mass kept when sampling
    temperature: float = 1.0  # softmax temperature when sampling
    seed: int = 0  # sampling seed; the same seed gives the same continuations

    @property
    def rows_per_prompt(self) -> int:
        """Sequences decoded per prompt: the beams in beam search, else the samples."""
        return self.num_beams if self.num_beams > 1 else self.num_samples

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"generation max_new_tokens must be > 0, got {self.max_new_tokens}")
        if self.num_samples <= 0:
            raise ValueError(f"generation num_samples must be > 0, got {self.num_samples}")
        if not self.do_sample and self.num_samples != 1:
            raise ValueError("greedy generation (do_sample=false) needs num_samples=1")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"generation min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}], "
                             f"got {self.min_new_tokens}")
        if self.num_beams < 1:
            raise ValueError(f"generation num_beams must be >= 1, got {self.num_beams}")
        if self.num_beams > 1 and (self.do_sample or self.min_new_tokens != self.max_new_tokens):
            raise ValueError("beam search (num_beams > 1) needs do_sample=false and min_new_tokens=max_new_tokens "
                             "(beams of different lengths are not implemented)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"generation top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            raise ValueError(f"generation temperature must be > 0, got {self.temperature}")


@runtime_checkable
class ScoringLM(Protocol):
    """What a benchmark may ask of a language model."""

    name: str  # identity of the model (and method) being scored, for logs

    def loglikelihood(self, requests: Sequence[Request]) -> list[Loglikelihood]:
        """One answer per request, in request order."""
        ...

    def loglikelihood_rolling(self, texts: Sequence[str], max_length: int | None = None,
                              stride: int | None = None) -> list[tuple[float, int]]:
        """(sum log-prob, n_tokens) of each whole text, sliding windows of ``max_length``
        tokens advanced by ``stride``; every token is scored exactly once."""
        ...

    def generate(self, prompts: Sequence[str], spec: GenerationSpec) -> list[list[str]]:
        """``spec.num_samples`` continuations per prompt (decoded text, prompt excluded)."""
        ...


@runtime_checkable
class RepresentationLM(Protocol):
    """What a benchmark that reads representations (SEAT, Neural-Collapse diagnostics) may ask.
    Implementations apply any debiasing projection to these states, as to scoring."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""
        ...

    def hidden_states(self, texts: Sequence[str], start_token: bool = True) -> torch.Tensor:
        """Mean-pooled final hidden states (after any debiasing projection): [len(texts), H] fp32.
        ``start_token``: the start token runs in front and the pool covers the text's tokens;
        False: the text's tokens run alone and the pool covers all of them (bias-bench's SEAT encoder)."""
        ...

    def per_token_hidden_states(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per text: (its token ids [T], the final hidden states that predict them [T, H] fp32 CPU);
        the first token is predicted from the sentence-start token."""
        ...

    def lm_head_rows(self, ids: Sequence[int]) -> torch.Tensor:
        """LM-head (unembedding) rows of ``ids``: [len(ids), H] fp32 CPU."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (for records)."""
        ...
