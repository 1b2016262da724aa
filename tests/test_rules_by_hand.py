"""The rules on tiny nets, checked against gradients written out by hand (no autograd)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saliency import explain
from saliency.engine.rules import get_rule
from tests.helpers import RULE_METHODS as METHODS
from tests.helpers import rule_by_hand

# Every spelling of a ReLU-family unit, with its pass-through cap.
SPELLINGS = {
    "nn.ReLU": (nn.ReLU(), math.inf),
    "nn.ReLU(inplace)": (nn.ReLU(inplace=True), math.inf),
    "F.relu": (F.relu, math.inf),
    "F.relu(inplace)": (lambda t: F.relu(t, inplace=True), math.inf),
    "torch.relu": (torch.relu, math.inf),
    "torch.relu_": (torch.relu_, math.inf),
    "Tensor.relu": (lambda t: t.relu(), math.inf),
    "Tensor.relu_": (lambda t: t.relu_(), math.inf),
    "nn.ReLU6": (nn.ReLU6(), 6.0),
    "nn.ReLU6(inplace)": (nn.ReLU6(inplace=True), 6.0),
    "F.relu6": (F.relu6, 6.0),
    "F.hardtanh(0,6)": (lambda t: F.hardtanh(t, 0.0, 6.0), 6.0),
    "F.hardtanh(0,3)": (lambda t: F.hardtanh(t, 0.0, 3.0), 3.0),
    "nn.Hardtanh(0,2)": (nn.Hardtanh(0.0, 2.0), 2.0),
    "F.threshold(0,0)": (lambda t: F.threshold(t, 0.0, 0.0), math.inf),
}


class TwoLayer(nn.Module):
    """x -> W1 -> act -> W2 -> logits, on inputs shaped (B, 1, 1, 5)."""

    def __init__(self, act):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(5, 8), nn.Linear(8, 3), act
        with torch.no_grad():
            self.fc1.weight.mul_(6.0)  # push some pre-activations past 6

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x.flatten(1))))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_every_spelling_gets_the_rule(spelling, method):
    act, cap = SPELLINGS[spelling]
    net = TwoLayer(act)
    x = torch.randn(4, 1, 1, 5)
    targets = torch.tensor([0, 1, 2, 1])
    pre = x.flatten(1) @ net.fc1.weight.T + net.fc1.bias
    if not math.isinf(cap):
        assert (pre > cap).any() and (pre < 0).any()
    g = net.fc2.weight[targets]
    expected = (rule_by_hand(g, pre, method, cap) @ net.fc1.weight).view_as(x)
    result = explain(net, x, method, targets)
    torch.testing.assert_close(result.maps, expected.detach())
    assert result.report.applied == (0 if method == "gradient" else 1)  # gradient hooks nothing


class ReusedInSequence(nn.Module):
    """One ReLU module called twice in a row, as torchvision's ResNet blocks do."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, 7), nn.Linear(7, 6), nn.Linear(6, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x.flatten(1))))))


@pytest.mark.parametrize("method", METHODS)
def test_module_reused_in_sequence(method):
    net, x, k = ReusedInSequence(), torch.randn(3, 1, 1, 5), torch.tensor([2, 0, 1])
    h1 = x.flatten(1) @ net.fc1.weight.T + net.fc1.bias
    h2 = h1.clamp(min=0) @ net.fc2.weight.T + net.fc2.bias
    r2 = rule_by_hand(net.fc3.weight[k], h2, method)
    r1 = rule_by_hand(r2 @ net.fc2.weight, h1, method)
    expected = (r1 @ net.fc1.weight).view_as(x).detach()
    torch.testing.assert_close(explain(net, x, method, k).maps, expected)


class ParallelBranches(nn.Module):
    """One ReLU module applied to two parallel branches in the same forward."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 6), nn.Linear(5, 6)
        self.va, self.vb = nn.Linear(6, 3), nn.Linear(6, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.flatten(1)
        return self.va(self.relu(self.a(x))) + self.vb(self.relu(self.b(x)))


@pytest.mark.parametrize("method", METHODS)
def test_one_module_two_branches(method):
    net, x, k = ParallelBranches(), torch.randn(3, 1, 1, 5), torch.tensor([0, 1, 2])
    ha = x.flatten(1) @ net.a.weight.T + net.a.bias
    hb = x.flatten(1) @ net.b.weight.T + net.b.bias
    expected = rule_by_hand(net.va.weight[k], ha, method) @ net.a.weight
    expected = expected + rule_by_hand(net.vb.weight[k], hb, method) @ net.b.weight
    result = explain(net, x, method, k)
    torch.testing.assert_close(result.maps, expected.view_as(x).detach())
    assert result.report.units == ({} if method == "gradient" else {"ReLU": 2})


class SkipFromPreActivation(nn.Module):
    """A pre-activation that feeds both a ReLU and a skip path."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.skip = nn.Linear(5, 6), nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x.flatten(1))
        return self.fc2(F.relu(h)) + self.skip(h)


@pytest.mark.parametrize("method", METHODS)
def test_rule_sees_only_the_units_own_gradient(method):
    net, x, k = SkipFromPreActivation(), torch.randn(6, 1, 1, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    h = x.flatten(1) @ net.fc1.weight.T + net.fc1.bias
    own = rule_by_hand(net.fc2.weight[k], h, method)
    expected = ((own + net.skip.weight[k]) @ net.fc1.weight).view_as(x).detach()
    torch.testing.assert_close(explain(net, x, method, k).maps, expected)
    if method != "gradient":
        # Applying the rule to the total gradient at h (Captum's fault) gives another answer.
        clamped_total = (own + net.skip.weight[k]).clamp(min=0)
        assert not torch.allclose((clamped_total @ net.fc1.weight).view_as(x), expected)


class PoolThenReLU(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.pool = pool
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.pool(self.conv(x))).flatten(1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_keeps_its_ordinary_gradient(method, pool):
    net = PoolThenReLU(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
    x, k = torch.randn(2, 1, 4, 4), torch.tensor([1, 2])
    w, b = net.conv.weight.view(2), net.conv.bias
    h = x * w.view(1, 2, 1, 1) + b.view(1, 2, 1, 1)  # (2, 2, 4, 4)
    windows = h.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 2, 2, 2, 4)  # B, C, i, j, window
    pooled = windows.max(-1).values if pool == "max" else windows.mean(-1)
    r = rule_by_hand(net.fc.weight[k].view(2, 2, 2, 2), pooled, method)
    if pool == "max":  # the switches: all gradient to the window's arg-max
        spread = torch.zeros_like(windows).scatter(-1, windows.argmax(-1, keepdim=True), 1.0)
    else:
        spread = torch.full_like(windows, 0.25)
    g = (
        (spread * r.unsqueeze(-1))
        .view(2, 2, 2, 2, 2, 2)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(2, 2, 4, 4)
    )
    expected = (g * w.view(1, 2, 1, 1)).sum(1, keepdim=True).detach()
    torch.testing.assert_close(explain(net, x, method, k).maps, expected)


def test_rule_objects():
    assert get_rule("GUIDED").name == "guided"
    assert not get_rule("gradient").changes_gradient
    with pytest.raises(ValueError, match="gradient, deconvnet, guided"):
        get_rule("smoothgrad")
