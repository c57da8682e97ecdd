"""InfoNCE, dynamic loss scaling, pooling and the offline example construction."""
from __future__ import annotations

import math

import pytest
import torch

from bench.errors import ConfigError
from methods.contrastive import Contrastive, ContrastHead, DynamicScaler, info_nce, pool
from bench.tasks.knowledge import split_of
from methods.contrastive_data import build_sources, render, toxigen_statements
from methods.counterfactual import Swapper, load_groups


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
    # three positives in one source: the mean over the 6 ordered pairs
    pos = torch.tensor([True, True, True, False])
    sims = z @ z.T
    expected = []
    for i in range(3):
        denom = sum(math.exp(sims[i, k]) for k in range(4) if k != i)
        expected += [-math.log(math.exp(sims[i, j]) / denom) for j in range(3) if j != i]
    got = info_nce(z, torch.zeros(4, dtype=torch.long), pos, 1.0).item()
    assert math.isclose(got, sum(expected) / 6, rel_tol=1e-5)


def test_info_nce_without_positive_pairs_is_zero():
    z = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    assert info_nce(z, torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool), 1.0).item() == 0.0


def test_dynamic_scaler_follows_the_ema_formula():
    s = DynamicScaler(beta=0.9, c=0.1)
    assert math.isclose(s(2.0), 0.1 / 2.0)
    assert math.isclose(s(1.0), 0.1 / (0.9 * 2.0 + 0.1 * 1.0))
    ema = 0.9 * 1.9 + 0.1 * 0.05
    assert math.isclose(s(0.05), 0.1 / ema)
    small = DynamicScaler(beta=0.9, c=0.1)
    assert small(0.01) == 1.0  # capped at 1


def test_pool_is_the_normalised_masked_mean_of_the_head():
    torch.manual_seed(0)
    head = ContrastHead(4)
    h = torch.randn(2, 3, 4)
    mask = torch.tensor([[0, 1, 1], [0, 1, 0]])
    z = pool(head, h, mask)
    expected0 = torch.nn.functional.normalize(head(h[0, 1:]).mean(0), dim=-1)
    assert torch.allclose(z[0], expected0, atol=1e-6)
    assert torch.allclose(z[1], head(h[1, 1]), atol=1e-6)  # one token: head output is already unit norm
    assert torch.allclose(z.norm(dim=-1), torch.ones(2))


def test_toxigen_lines_hold_several_statements(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("- a b\\n- c d\\n-\n- c d\\n- e\\n-\n")
    assert toxigen_statements(path) == ["a b", "c d", "e"]


def test_render_cleans_template_spacing():
    assert render("[X] was born in [Y] .", "Ann", "Paris") == "Ann was born in Paris."


def test_sources_use_train_facts_and_real_groups(data_root):
    swapper = Swapper(*load_groups(data_root, "gender"))
    sources, counts = build_sources(data_root, "gender", swapper, seed=0)
    again, _ = build_sources(data_root, "gender", swapper, seed=0)
    assert sources == again  # reproducible
    groups = [s for s in sources if s.id.startswith("group/women/")]
    facts = [s for s in sources if s.id.startswith("fact/")]
    assert len(groups) == counts["group_sources"] > 10 and len(facts) == counts["fact_sources"] == len(groups)
    assert all(split_of(s.id.rsplit("/", 1)[1]) == "train" for s in facts)
    assert all(len(s.positives) >= 2 and s.negatives and not set(s.positives) & set(s.negatives) for s in sources)
    hate = set(toxigen_statements(data_root.path("toxigen/prompts/hate_women_1k.txt")))
    assert all(set(s.negatives) <= hate for s in groups)
    assert counts["negatives_toxic"] == sum(len(s.negatives) for s in groups)
    assert counts["positives_fact"] == 2 * len(facts)
    # a counterfactual positive swaps the gender words of its neutral statement
    assert any("men" in s.positives[1].split() and "women" in s.positives[0].split() for s in groups)


def test_config_validation():
    with pytest.raises(ConfigError, match="method.scaling"):
        Contrastive(scaling="adaptive")
    with pytest.raises(ConfigError, match="method.tau"):
        Contrastive(tau=0)
    assert Contrastive(nc3_weight=10.0).name == "contrastive_nc3"
