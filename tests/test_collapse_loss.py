"""The NC3 regularizer on synthetic features."""
from __future__ import annotations

import math

import torch

from methods.finetune.nc3 import NC3Regularizer, class_ids


def _features(means: torch.Tensor, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """hidden [1, N, H] at exactly the class means, labels [1, N], mask [1, N]."""
    hidden = means[torch.tensor(labels)]
    return hidden[None], torch.tensor([labels]), torch.ones(1, len(labels))


def test_zero_when_cosines_are_equal():
    # class means at +-e1 and +-e2 (mu_G = 0); head rows chosen with cos = 0.6 to each centred mean
    means = torch.zeros(6, 4)
    means[2], means[3], means[4], means[5] = torch.tensor([[1., 0, 0, 0], [-1., 0, 0, 0], [0, 1., 0, 0], [0, -1., 0, 0]])
    weight = torch.zeros(6, 4)
    for c in range(2, 6):
        weight[c] = 0.6 * means[c] / means[c].norm() + 0.8 * torch.tensor([0, 0, 1., 0])
    reg = NC3Regularizer([2, 3, 4, 5])
    hidden, labels, mask = _features(means, [2, 3, 4, 5, 2, 4])
    assert reg(hidden, labels, mask, weight).item() < 1e-6


def test_value_is_unbiased_std_of_cosines():
    means = torch.tensor([[0., 0], [2., 0], [0., 2]])  # classes 1 and 2; mu_G = (1, 1)
    weight = torch.tensor([[9., 9], [1., 0], [1., 0]])
    reg = NC3Regularizer([1, 2])
    hidden, labels, mask = _features(means, [1, 2])
    # centred means: (1, -1) and (-1, 1); cosines with (1, 0): +1/sqrt2 and -1/sqrt2;
    # unbiased std (the release's torch.std): sqrt(((1/sqrt2)^2 + (1/sqrt2)^2) / (2 - 1)) = 1
    assert math.isclose(reg(hidden, labels, mask, weight).item(), 1.0, rel_tol=1e-5)


def test_masked_positions_and_other_tokens_are_ignored():
    reg = NC3Regularizer([1, 2])
    hidden = torch.tensor([[[1., 0], [0., 1], [5., 5], [7., 7]]])
    reg.update(hidden, torch.tensor([[1, 2, 0, 1]]), torch.tensor([[1, 1, 1, 0]]))
    assert reg.counts.tolist() == [1, 1]
    assert reg.totals.tolist() == [[1., 0], [0., 1]]


def test_running_means_accumulate_over_steps():
    reg = NC3Regularizer([1])
    reg.update(torch.tensor([[[2., 0]]]), torch.tensor([[1]]), torch.ones(1, 1))
    reg.update(torch.tensor([[[0., 4]]]), torch.tensor([[1]]), torch.ones(1, 1))
    assert (reg.totals / reg.counts[:, None]).tolist() == [[1., 2.]]


def test_gradient_reaches_the_head_rows_only():
    torch.manual_seed(0)
    backbone = torch.nn.Linear(8, 8)
    weight = torch.nn.Parameter(torch.randn(10, 8))
    hidden = backbone(torch.randn(1, 30, 8))
    labels = torch.randint(0, 10, (1, 30))
    reg = NC3Regularizer([1, 3, 5, 7])
    loss = reg(hidden, labels, torch.ones(1, 30), weight)
    assert loss.item() > 0
    loss.backward()
    assert backbone.weight.grad is None and backbone.bias.grad is None
    assert weight.grad is not None
    rows = weight.grad.abs().sum(1)
    assert (rows[[1, 3, 5, 7]] > 0).all() and (rows[[0, 2, 4, 6, 8, 9]] == 0).all()


def test_descending_the_loss_on_w_equalises_the_cosines():
    torch.manual_seed(1)
    means = torch.randn(5, 6)
    weight = torch.nn.Parameter(torch.randn(5, 6))
    reg = NC3Regularizer([0, 1, 2, 3, 4])
    reg.update(means[None], torch.arange(5)[None], torch.ones(1, 5))
    opt = torch.optim.SGD([weight], lr=0.5)
    first = reg.loss(weight).item()
    for _ in range(200):
        opt.zero_grad()
        reg.loss(weight).backward()
        opt.step()
    assert reg.loss(weight).item() < 0.1 * first


def test_fewer_than_two_seen_classes_gives_zero():
    reg = NC3Regularizer([1, 2])
    weight = torch.nn.Parameter(torch.randn(3, 4))
    assert reg.loss(weight).item() == 0.0
    reg.update(torch.randn(1, 2, 4), torch.tensor([[1, 1]]), torch.ones(1, 2))
    assert reg.loss(weight).item() == 0.0


def test_class_ids_are_single_tokens_shared_with_the_diagnostic(tiny_lm, data_root):
    from bench.tasks.collapse import fairness_classes

    files = ["fairness_nc_words/adept/male.txt", "fairness_nc_words/adept/female.txt"]
    ids, counts = class_ids(tiny_lm, data_root, files)
    he, she = tiny_lm.encode(" he")[0], tiny_lm.encode(" she")[0]
    assert he in ids and she in ids and ids == sorted(set(ids)) and len(ids) == counts["classes"] == 151
    assert ids == sorted(fairness_classes(data_root, tiny_lm.encode)[0])  # one rule: regularizer == diagnostic
