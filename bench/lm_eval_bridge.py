"""lm-evaluation-harness in both directions (optional extra ``lm_eval``).

``HarnessLM`` (taxbench -> lm-eval): lm-eval's ``LM`` API on top of any ``ScoringLM``, so
lm-eval tasks score exactly what taxbench benchmarks score, debiasing wrappers
(Self-Debias, INLP, SentenceDebias) and fine-tuned checkpoints included.

* ``loglikelihood``: one ``ScoringLM.loglikelihood`` call; lm-eval's (context,
  continuation) pairs are taxbench ``Request``s with the same convention (an empty context
  is the sentence-start token, trailing context whitespace belongs to the continuation).
* ``loglikelihood_rolling``: ``ScoringLM.loglikelihood_rolling`` with the model's window.
  Deviation: lm-eval gives the last window of a text longer than the window a full window
  of context; taxbench windows are disjoint (each later window conditions on one token),
  so only texts longer than the model window score differently.
* ``generate_until``: ``ScoringLM.generate`` takes no stop strings, so each request decodes
  up to ``max_gen_toks`` tokens (or end-of-text) and the text is cut before the first stop
  sequence with lm-eval's own ``postprocess_generated_text``.  Decoding is causal and each
  prompt's randomness is its own, so the cut text equals stopping at the sequence; only
  the tokens after it are wasted.  ``do_sample`` / ``temperature`` / ``top_p`` map onto
  ``GenerationSpec`` (lm-eval's default: greedy); other generation kwargs are refused.

``HarnessScoringLM`` (lm-eval -> taxbench): a ``ScoringLM`` on any lm-eval ``LM`` backend
(``hf``, ``vllm``, ``local-completions``, ...), built by ``load_harness_lm(backend, args)``.
Token counts (``Loglikelihood.n_tokens``, the per-token means of StereoSet) come from the
backend's tokenizer, tokenised as lm-eval does; a backend without ``tok_encode`` is
refused.  ``hidden_states`` is refused: SEAT, NC and the projection methods (INLP,
SentenceDebias) need hidden states that lm-eval backends do not expose.  Sampling with
``num_samples`` > 1 sends each prompt ``num_samples`` times after seeding torch with
``spec.seed``; the backend's own sampler decides (no per-prompt seeds).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch

from bench.errors import ConfigError
from bench.api.lm import GenerationSpec, Loglikelihood, Request, ScoringLM

try:
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import LM
    from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ConfigError("lm-evaluation-harness is not installed: pip install -e .[lm_eval]") from exc

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default max_gen_toks
GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_p"}  # what generate_until maps


class HarnessLM(LM):
    """lm-eval ``LM`` over a taxbench ``ScoringLM`` (see the module docstring)."""

    def __init__(self, lm: ScoringLM, eos: str | None = None):
        super().__init__()
        self.lm = lm
        self.eos = eos  # end-of-text string, always a stop sequence (as lm-eval's HF backend adds it)

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        answers = self.lm.loglikelihood([Request(*r.args) for r in requests])
        return [(a.logprob, a.is_greedy) for a in answers]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return [s for s, _ in self.lm.loglikelihood_rolling([r.args[0] for r in requests])]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Requests grouped by their generation kwargs, one ``generate`` call per group."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[repr(sorted(r.args[1].items()))].append(i)
        out: list[str] = [""] * len(requests)
        for members in groups.values():
            spec, stop = generation_spec(requests[members[0]].args[1])
            stop = stop + ([self.eos] if self.eos and self.eos not in stop else [])
            texts = self.lm.generate([requests[i].args[0] for i in members], spec)
            for i, (text,) in zip(members, texts):
                out[i] = postprocess_generated_text(text, stop, None)
        return out


def generation_spec(gen_kwargs: dict[str, Any]) -> tuple[GenerationSpec, list[str]]:
    """(GenerationSpec, stop sequences) of one lm-eval ``generate_until`` request's kwargs."""
    unknown = sorted(set(gen_kwargs) - GEN_KWARGS - {"max_new_tokens", "max_tokens", "max_completion_tokens"})
    if unknown:
        raise ConfigError(f"lm-eval generation kwargs {unknown} are not supported by taxbench's GenerationSpec "
                          f"(supported: {sorted(GEN_KWARGS)})")
    kw = normalize_gen_kwargs(gen_kwargs, DEFAULT_MAX_GEN_TOKS)
    sample = bool(kw.get("do_sample")) and float(kw.get("temperature", 1.0)) > 0
    spec = GenerationSpec(max_new_tokens=int(kw["max_gen_toks"]), num_samples=1, do_sample=sample,
                          temperature=float(kw.get("temperature", 1.0)) if sample else 1.0,
                          top_p=float(kw.get("top_p", 1.0) or 1.0))
    return spec, list(kw["until"])


class HarnessScoringLM:
    """taxbench ``ScoringLM`` over an lm-eval ``LM`` backend (see the module docstring)."""

    def __init__(self, harness: LM, name: str):
        if not callable(getattr(harness, "tok_encode", None)):
            raise ConfigError(f"lm-eval backend {type(harness).__name__} has no tokenizer (tok_encode): taxbench "
                              "needs token counts for per-token scores")
        self.harness = harness
        self.name = name

    def _n_tokens(self, request: Request) -> int:
        """Continuation tokens as lm-eval's ``TemplateLM.loglikelihood`` counts them."""
        context, continuation = request.context, request.continuation
        if context:
            return len(self.harness._encode_pair(context, continuation)[1])
        cont = self.harness.tok_encode(continuation, add_special_tokens=False)
        return len(cont) - (cont[:1] == [self.harness.prefix_token_id])

    def loglikelihood(self, requests: Sequence[Request]) -> list[Loglikelihood]:
        if any(r.bare for r in requests):  # lm-eval's API has no "no start token" request
            raise ConfigError("model=lm_eval cannot score bare requests (StereoSet protocol=bias_bench); "
                              "use benchmarks.stereoset.protocol=clean")
        instances = [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(requests)]
        answers = self.harness.loglikelihood(instances)
        return [Loglikelihood(float(lp), bool(greedy), self._n_tokens(r))
                for (lp, greedy), r in zip(answers, requests)]

    def loglikelihood_rolling(self, texts: Sequence[str], max_length: int | None = None,
                              stride: int | None = None) -> list[tuple[float, int]]:
        """lm-eval's rolling windows of the backend's max_length; ``max_length`` / ``stride`` are refused."""
        if max_length is not None or stride is not None:
            raise ConfigError("model=lm_eval scores whole texts with the backend's own rolling windows: set the "
                              "benchmark's max_length and stride to null")
        instances = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
        totals = self.harness.loglikelihood_rolling(instances)
        return [(float(s), len(self.harness.tok_encode(t))) for s, t in zip(totals, texts)]

    def generate(self, prompts: Sequence[str], spec: GenerationSpec) -> list[list[str]]:
        kwargs = {"until": [], "max_gen_toks": spec.max_new_tokens, "do_sample": spec.do_sample}
        if spec.do_sample:
            kwargs.update(temperature=spec.temperature, top_p=spec.top_p)
        torch.manual_seed(spec.seed)
        instances = [Instance("generate_until", {}, (p, dict(kwargs)), i * spec.num_samples + j)
                     for i, p in enumerate(prompts) for j in range(spec.num_samples)]
        texts = self.harness.generate_until(instances)
        k = spec.num_samples
        return [list(texts[i * k:(i + 1) * k]) for i in range(len(prompts))]

    def hidden_states(self, texts: Sequence[str], start_token: bool = True) -> torch.Tensor:
        raise ConfigError("model=lm_eval has no hidden states: SEAT, NC, INLP and SentenceDebias need them")


def load_harness_lm(backend: str, args: dict[str, Any] | str | None = None, name: str | None = None,
                    batch_size: int | None = None, device: str | None = None) -> HarnessScoringLM:
    """A ``HarnessScoringLM`` on lm-eval's registered backend ``backend`` built from ``args``
    (a dict or lm-eval's "key=value,..." string), e.g. ``load_harness_lm("hf", {"pretrained": "gpt2"})``."""
    from lm_eval.api.registry import get_model

    try:
        cls = get_model(backend)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"model.backend={backend!r} is not an lm-eval model backend: {exc}") from None
    extra = {"batch_size": batch_size, "device": device}
    harness = (cls.create_from_arg_string(args, extra) if isinstance(args, str)
               else cls.create_from_arg_obj(dict(args or {}), extra))
    return HarnessScoringLM(harness, name or backend)
