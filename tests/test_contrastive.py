"""Contrastive method as released: InfoNCE, the two loss forms, the CE mask, pooling, head init, data."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from bench.errors import ConfigError
from bench.tasks.knowledge import split_of
from bench.tasks import is_evaluation_file
from methods.contrastive import (Contrastive, ContrastHead, ContrastiveObjective, EMAScale, Encoded, Item,
                                 ce_last_positive, encode_source, info_nce, pool, sequence_masks)
from methods.contrastive_data import (Source, attribute_spans, build_sources, nearest, statement_lists,
                                      toxigen_files)
from methods.text.swap import Swapper
from methods.finetune.config import TrainConfig
from methods.text.words import load_tuples
from tiny_models import tiny_gemma3


def test_info_nce_matches_hand_computation():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    source = torch.tensor([0, 0, 0, 0])
    positive = torch.tensor([True, True, False, False])
    tau = 0.5
    p01 = math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.0) + math.exp(-1.0 / tau))
    p10 = math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.8 / tau) + math.exp(-0.6 / tau))
    expected = -(math.log(p01) + math.log(p10)) / 2
    assert math.isclose(info_nce(z, source, positive, tau).item(), expected, rel_tol=1e-5)


def test_info_nce_stays_within_sources_and_averages_pairs():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    # two sources of two positives each: within a source p_ij = 1, so the loss is 0 whatever the cosines
    assert info_nce(z, torch.tensor([0, 0, 1, 1]), torch.ones(4, dtype=torch.bool), 1.0).abs().item() < 1e-6
    pos = torch.tensor([True, True, True, False])  # three positives in one source: mean over 6 ordered pairs
    sims = z @ z.T
    expected = []
    for i in range(3):
        denom = sum(math.exp(sims[i, k]) for k in range(4) if k != i)
        expected += [-math.log(math.exp(sims[i, j]) / denom) for j in range(3) if j != i]
    assert math.isclose(info_nce(z, torch.zeros(4, dtype=torch.long), pos, 1.0).item(), sum(expected) / 6, rel_tol=1e-5)


def test_ema_scale_follows_the_release():
    s = EMAScale(beta=0.9, c=0.1)
    assert s(2.0) == 1.0  # first call: scale 1, EMA 0 -> 0.2
    assert math.isclose(s(1.0), 0.1 / 0.2)  # then EMA 0.9 * 0.2 + 0.1 * 1 = 0.28
    assert math.isclose(s(0.5), 0.1 / 0.28)
    capped = EMAScale(beta=0.9, c=0.1)
    capped(0.5)
    assert capped(0.5) == 1.0  # c / EMA = 0.1 / 0.05 = 2, capped at 1


def _objective(scaling: str, alpha: float, **fields) -> ContrastiveObjective:
    return ContrastiveObjective(pad_id=0, head=ContrastHead(4), tau=1.0, alpha=alpha, scaling=scaling, toxic_weight=1.5,
                                **fields)


def test_constant_form_is_ce_plus_16_times_weighted_cl():
    obj = _objective("constant", 16.0)
    loss, parts = obj.combine(torch.tensor(2.0), torch.tensor(0.5), toxic=True)
    assert math.isclose(loss.item(), 2.0 + 16 * 1.5 * 0.5) and parts["w_tox"] == 1.5
    loss, parts = obj.combine(torch.tensor(2.0), torch.tensor(0.5), toxic=False)
    assert math.isclose(loss.item(), 2.0 + 16 * 0.5) and parts["s_ce"] == 1.0 and parts["s_cl"] == 16.0


def test_ema_form_scales_each_loss_and_has_no_alpha():
    obj = _objective("ema", 1.0)
    loss, _ = obj.combine(torch.tensor(2.0), torch.tensor(0.5), toxic=True)
    assert math.isclose(loss.item(), 2.0 + 1.5 * 0.5)  # first step: unit scales; EMAs 0.2 and 0.075
    loss, parts = obj.combine(torch.tensor(1.0), torch.tensor(1.0), toxic=False)
    assert math.isclose(parts["s_ce"], 0.1 / 0.2) and parts["s_cl"] == 1.0  # 0.1 / 0.075 > 1: capped
    assert math.isclose(loss.item(), 0.5 * 1.0 + 1.0 * 1.0)  # EMAs now 0.28 and 0.1675
    loss, parts = obj.combine(torch.tensor(1.0), torch.tensor(1.0), toxic=False)
    assert math.isclose(loss.item(), 0.1 / 0.28 + 0.1 / 0.1675, rel_tol=1e-6)


def test_config_forms_and_validation():
    assert Contrastive().alpha == 16.0 and Contrastive(scaling="ema").alpha == 1.0
    with pytest.raises(ConfigError, match="method.alpha=16.0 with method.scaling=ema"):
        Contrastive(scaling="ema", alpha=16.0)
    with pytest.raises(ConfigError, match="method.scaling"):
        Contrastive(scaling="dynamic")
    with pytest.raises(ConfigError, match="method.tau"):
        Contrastive(tau=0)
    assert Contrastive(nc3_weight=10.0).name == "contrastive_nc3"


def test_head_has_the_release_initialisation():
    torch.manual_seed(0)
    head = ContrastHead(64)
    assert abs(head.dense.weight.std().item() - 0.01) < 0.001
    assert abs(head.out_proj.weight.std().item() - 1 / 64) < 0.0015
    assert not head.dense.bias.any() and not head.out_proj.bias.any()
    assert torch.allclose(head(torch.randn(3, 64)).norm(dim=-1), torch.ones(3))


def test_pool_is_the_normalised_masked_mean_of_the_head():
    torch.manual_seed(0)
    head = ContrastHead(4)
    h = torch.randn(2, 3, 4)
    z = pool(head, h, torch.tensor([[0, 1, 1], [0, 1, 0]]))
    assert torch.allclose(z[0], torch.nn.functional.normalize(head(h[0, 1:]).mean(0), dim=-1), atol=1e-6)
    assert torch.allclose(z[1], head(h[1, 1]), atol=1e-6)  # one token: the head output is already unit norm


def test_masks_pool_marked_tokens_else_all_target_tokens():
    seqs = [Encoded((9, 5, 6, 7, 8), start=2, marked=(3,)), Encoded((9, 5, 6), start=1, marked=())]
    target, pooled, label = sequence_masks(seqs, 5, torch.device("cpu"))
    assert target.int().tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert pooled.int().tolist() == [[0, 0, 0, 1, 0], [0, 1, 1, 0, 0]]
    assert label.int().tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]]  # target tokens after the first


def test_ce_is_on_the_last_positive_over_all_label_tokens():
    """Source 0: positives a, b, negative c; source 1: positives d, e.  CE sequences: b and e."""
    a, b, c = Encoded((1, 2, 3, 4), 2, ()), Encoded((1, 2, 5, 6, 7), 2, ()), Encoded((1, 2, 3), 1, ())
    d, e = Encoded((1, 4, 4), 1, ()), Encoded((1, 3, 2, 6), 2, ())
    items = [Item((a, b, c), 2, True), Item((d, e), 2, False)]
    torch.manual_seed(0)
    logits = torch.randn(5, 5, 8)
    hidden = torch.randn(5, 5, 4)
    model = lambda **kw: SimpleNamespace(logits=logits, hidden_states=[hidden])  # noqa: E731
    model.device = torch.device("cpu")
    _, parts = _objective("constant", 16.0, packing=False, head_on_ce_rows=False)(model, items)  # a fake model
    # by hand: b predicts tokens 6, 7 (positions 3, 4), e predicts 6 (position 3); label tokens of all
    # sequences: a 1 (pos 3), b 2, c 1 (pos 2), d 1 (pos 2), e 1 -> 6
    logp = torch.log_softmax(logits, -1)
    nll = -(logp[1, 2, 6] + logp[1, 3, 7] + logp[4, 2, 6])
    assert math.isclose(parts["ce"], nll.item() / 6, rel_tol=1e-5)
    ids = torch.tensor([[1, 2, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 0, 1, 1]])
    assert math.isclose(ce_last_positive(torch.zeros(1, 5, 8), ids, mask, 4).item(), 2 * math.log(8) / 4, rel_tol=1e-6)


def _loss_and_gradients(objective: ContrastiveObjective, model, items) -> tuple[dict, dict]:
    loss, parts = objective(model, items)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in [*model.named_parameters(), *objective.head.named_parameters()]}
    return parts, grads


@pytest.mark.parametrize("packing", [None, False, True])
@pytest.mark.parametrize("head_on_ce_rows", [None, True])
def test_packing_and_the_head_on_the_ce_rows_give_the_padded_full_logits_loss_and_gradients(
        tiny_lm, data_root, packing, head_on_ce_rows):
    """Against right-padded rows with every row's logits: packed sequences (hidden states unpacked, zeros at
    padding) and the output embedding on the CE rows only; ``None``: decided on the first call (the first call
    computes every position's logits and checks that the embedding of the last hidden states rebuilds them)."""
    method = Contrastive(max_examples=8)
    plan = method.plan(tiny_lm, data_root, method.train, seed=0)
    items = plan.items[:4]
    runs = {}
    for flags in ((False, False), (packing, head_on_ce_rows)):
        objective, model = copy.deepcopy(plan.objective), copy.deepcopy(tiny_lm.model).train()
        objective.packing, objective.head_on_ce_rows = flags
        runs[flags] = _loss_and_gradients(objective, model, items)
        assert (objective.packing, objective.head_on_ce_rows) == tuple(flag is not False for flag in flags)
    (parts_padded, grads_padded), (parts, grads) = runs[False, False], runs[packing, head_on_ce_rows]
    assert parts == pytest.approx(parts_padded, rel=1e-5)
    for name, grad in grads_padded.items():  # float rounding: within 1e-5 of each gradient's largest entry
        assert (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_the_head_is_kept_on_every_row_under_final_logit_soft_capping(tiny_lm, data_root):
    method = Contrastive(max_examples=8)
    plan = method.plan(tiny_lm, data_root, method.train, seed=0)
    capped = tiny_gemma3(tiny_lm.tokenizer, window=512, final_logit_softcapping=0.01)  # logits != embedding(h)
    objective = copy.deepcopy(plan.objective)
    objective(capped, plan.items[:4])
    assert objective.packing is True and objective.head_on_ce_rows is False


def test_encode_source_conditions_on_the_context_and_marks_tokens(tiny_lm):
    text, swapped = "the women said hello", "the men said hello"
    src = Source("s", "- a b c d e f g\n-", (text, swapped), ("bad",), ("toxic",), (((4, 9),), ((4, 7),), ()))
    item = encode_source(tiny_lm, src, seq_len=64)
    context = tiny_lm.tokenizer(src.context, add_special_tokens=False).input_ids
    tok = tiny_lm.tokenizer
    first = item.sequences[0]
    assert first.ids == (tiny_lm.prefix_id, *context, *tok(" " + text, add_special_tokens=False).input_ids)
    assert first.start == 1 + len(context)
    assert [tok.decode([first.ids[p]]) for p in first.marked] == [" women"]
    assert [tok.decode([item.sequences[1].ids[p]]) for p in item.sequences[1].marked] == [" men"]
    assert item.sequences[2].marked == () and item.n_positives == 2 and item.toxic
    short = encode_source(tiny_lm, src, seq_len=8).sequences[0]  # context truncated on the left
    assert len(short.ids) == 8 and short.ids[1:short.start] == tuple(context[-(short.start - 1):])


def test_statement_lists_and_attribute_spans(tmp_path, data_root):
    prompts = tmp_path / "p.txt"
    prompts.write_text("- a b\\n- c d\\n-\n- e\\n-\n")
    assert statement_lists(prompts) == [["a b", "c d"], ["e"]]
    demos = tmp_path / "d.txt"
    demos.write_text("one\n\ntwo\n")
    assert statement_lists(demos) == [["one", "two"]]
    swapper = Swapper(load_tuples(data_root, "gender"), fold_case=True)
    text = "My mother, a nurse, met the king."
    assert [text[a:b] for a, b in attribute_spans(text, swapper)] == ["mother", "king"]
    assert nearest("women are strong", ["men are weak", "women are strong people", "cats"], 2) == [
        "women are strong people", "men are weak"]


def test_sources_are_counterfactuals_perturbations_and_train_facts(data_root):
    swapper = Swapper(load_tuples(data_root, "gender"), fold_case=True)
    sources, counts = build_sources(data_root, swapper, seed=0)
    assert sources == build_sources(data_root, swapper, seed=0)[0]  # reproducible
    files = toxigen_files(data_root)
    assert len({g for _, g in files}) == 16 and len(files) == 31  # every group, hate and neutral (no neutral trans)
    assert sum(len(rels) for rels in files.values()) == 61  # 31 prompt files + 30 demonstration files
    groups = [s for s in sources if s.id.startswith("group/")]
    facts = [s for s in sources if s.id.startswith("fact/")]
    assert len(groups) == counts["group_sources"] > 1000 and len(facts) == counts["fact_sources"] == len(groups)
    hate = {g: {x for rel in rels for items in statement_lists(data_root.path(rel)) for x in items}
            for (kind, g), rels in files.items() if kind == "hate"}
    for s in groups:
        text, swapped = s.positives
        assert swapped == swapper.counterfactual(text, None) != text  # gender pairs: the other member (no draw)
        assert set(s.negatives) <= hate[s.id.split("/")[1]] and s.negative_kinds == ("toxic",) * len(s.negatives)
        assert s.marks[0] and s.context.endswith("\n-")
    for s in facts:
        assert split_of(s.id.rsplit("/", 1)[1]) == "train"
        (p1, p2), spans = s.positives, s.marks
        for neg, ((a, b),), pos, ((pa, pb),) in zip(s.negatives, spans[2:], (p1, p2), spans[:2]):
            assert neg[:a] == pos[:pa] and neg[b:] == pos[pb:] and neg[a:b] != pos[pa:pb]  # only the object differs
    assert counts["negatives_toxic"] == sum(len(s.negatives) for s in groups)
    assert counts["negatives_entity_swap"] == sum(len(s.negatives) for s in facts)
    toxigen = [f for rels in toxigen_files(data_root).values() for f in rels]
    assert len(toxigen) == 61 and not any(is_evaluation_file(f) for f in toxigen)


def test_paper_budget_is_more_steps_than_cpu(data_root):
    method = Contrastive(bias_type="race")  # the bias type with the fewest sources
    n, _ = build_sources(data_root, Swapper(load_tuples(data_root, "race"), fold_case=True), seed=0)
    cfg: TrainConfig = method.train
    assert cfg.resolve("paper").steps(len(n)) == math.ceil(4 * len(n) / 4) > 100 * cfg.resolve("cpu").steps(len(n))
