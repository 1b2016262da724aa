"""LRP: equal to zennit's composites and canonizers where zennit has them (VGG-11 with and
without batch norm, ResNet-18), conservative where it has none (DenseNet, MobileNetV2,
EfficientNet, the offline EfficientNet-Lite0), right on nets worked out by hand, the model left
exactly as it was, and through every command."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from PIL import Image
from torch import nn

from saliency import RuleCoverageWarning, explain
from saliency.api import explain_batch
from saliency.engine.options import MethodOptions

from .commands import ROOT, cli, compare_evaluate_and_sanity
from .outputs_check import check_nothing_lost

LRP = ("lrp_epsilon_plus", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box",
       "lrp_epsilon_alpha2_beta1_flat")  # fmt: skip
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _trained_looking(
    model: nn.Module, zero_bias: bool = False, data: torch.Tensor | None = None
) -> nn.Module:
    """Batch norms with non-trivial statistics (those of ``data`` when given, so activations
    keep their scale through a deep net); with ``zero_bias``, every layer's bias (batch norms
    folded) is zero, so that no relevance is absorbed and the sum must equal the logit."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if data is not None:
        for module in norms:
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
        with torch.no_grad():
            model.train()(data)
    for module in norms:
        if data is None:
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 1.5)
        module.weight.data.uniform_(0.5, 1.5)
        module.bias.data.uniform_(-0.2, 0.2)
        if zero_bias:
            scale = module.weight / (module.running_var + module.eps) ** 0.5
            module.bias.data = module.running_mean * scale
    for module in model.modules():
        if zero_bias and isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
            module.bias.data.zero_()
    return model.eval()


def _lrp(model: nn.Module, x: torch.Tensor, method: str, targets: torch.Tensor, **settings):
    _, (results,) = explain_batch(
        model, x, [method], lambda _: [targets], MethodOptions(settings=settings), (MEAN, STD)
    )
    return results[method]


def _zennit(
    model: nn.Module, x: torch.Tensor, method: str, targets: torch.Tensor, canonizer, **kwargs
):
    composites = pytest.importorskip("zennit.composites")
    attribution = pytest.importorskip("zennit.attribution")
    low = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).expand_as(x)
    high = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).expand_as(x)
    composite = {
        "lrp_epsilon_plus": lambda: composites.EpsilonPlus(canonizers=[canonizer()], **kwargs),
        "lrp_epsilon_plus_flat": lambda: composites.EpsilonPlusFlat(
            canonizers=[canonizer()], **kwargs
        ),
        "lrp_epsilon_gamma_box": lambda: composites.EpsilonGammaBox(
            low=low, high=high, canonizers=[canonizer()], **kwargs
        ),
        "lrp_epsilon_alpha2_beta1_flat": lambda: composites.EpsilonAlpha2Beta1Flat(
            canonizers=[canonizer()], **kwargs
        ),
    }[method]()
    column = targets.view(-1, 1)
    with attribution.Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(
            x, lambda out: torch.zeros_like(out).scatter_(1, column, out.gather(1, column))
        )
    return relevance


@pytest.mark.parametrize("method", LRP)
@pytest.mark.parametrize("arch", ["vgg11", "vgg11_bn", "resnet18"])
def test_equals_zennits_composites_with_canonizers(arch: str, method: str) -> None:
    canonizers = pytest.importorskip("zennit.torchvision")
    torch.manual_seed(3)
    model = _trained_looking(getattr(torchvision.models, arch)(num_classes=10))
    x = (torch.rand(2, 3, 64, 64) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(
        1, 3, 1, 1
    )
    targets = torch.tensor([2, 7])
    canonizer = canonizers.ResNetCanonizer if arch == "resnet18" else canonizers.VGGCanonizer
    ours = _lrp(model, x, method, targets).maps
    theirs = _zennit(model, x, method, targets, canonizer)
    error = ((ours - theirs).norm() / theirs.norm()).item()
    assert error <= 1e-3, error
    assert not torch.equal(ours, torch.zeros_like(ours))


@pytest.mark.parametrize("first", ["flat", "w_square", "z_box"])
@pytest.mark.parametrize("same", [False, True])
def test_first_layer_rules_equal_zennits(first: str, same: bool) -> None:
    """The first-layer rules against zennit's, also on a TensorFlow-style "same" convolution
    (timm's ``Conv2dSame``, which pads before its call): the padding gets no relevance."""
    core = pytest.importorskip("zennit.core")
    zennit_rules = pytest.importorskip("zennit.rules")
    zennit_types = pytest.importorskip("zennit.types")
    from timm.layers import Conv2dSame

    from saliency.engine.lrp import rules as ours
    from saliency.engine.lrp.plan import RuleSet
    from saliency.engine.lrp.propagate import relevance

    torch.manual_seed(9)
    conv = Conv2dSame(3, 6, 3, stride=2) if same else nn.Conv2d(3, 6, 3, stride=2, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 7 * 7, 5)).eval()  # fmt: skip
    x = torch.randn(2, 3, 17, 17)
    targets = torch.tensor([1, 3])
    low, high = torch.full((3,), -2.0), torch.full((3,), 2.5)
    theirs_first = {
        "flat": zennit_rules.Flat(),
        "w_square": zennit_rules.WSquare(),
        "z_box": zennit_rules.ZBox(low=low.view(1, 3, 1, 1), high=high.view(1, 3, 1, 1)),
    }[first]
    ours_first = {"flat": ours.flat_rule, "w_square": ours.w_square_rule,
                  "z_box": ours.z_box_rule(low, high)}[first]  # fmt: skip
    layers = [
        (zennit_types.Convolution, zennit_rules.ZPlus()),
        (nn.Linear, zennit_rules.Epsilon()),
        (zennit_types.Activation, zennit_rules.Pass()),
    ]
    composite = core.Composite(
        module_map=lambda ctx, name, module: theirs_first if name == "0" else next(
            (rule for kind, rule in layers if isinstance(module, kind)), None
        )
    )  # fmt: skip
    column = targets.view(-1, 1)
    with composite.context(net):
        inputs = x.clone().requires_grad_(True)
        out = net(inputs)
        (theirs,) = torch.autograd.grad(
            out, inputs, torch.zeros_like(out).scatter_(1, column, out.gather(1, column))
        )
    rules = RuleSet(ours.alpha_beta_rule(1.0, 0.0), ours.epsilon_rule(1e-6), ours_first)
    _, (found,), _ = relevance(net, x, [targets], rules)
    error = ((found - theirs).norm() / theirs.norm()).item()
    assert error <= 1e-4, error


@pytest.mark.parametrize("method", LRP)
def test_without_biases_equals_zennits_zero_params(method: str) -> None:
    """``RuleSet(bias=False)`` (the Python API's) is zennit's ``zero_params=["bias"]``."""
    canonizers = pytest.importorskip("zennit.torchvision")
    from dataclasses import replace

    from saliency.engine.lrp.propagate import relevance
    from saliency.engine.method import PathContext
    from saliency.engine.registry import get_method

    torch.manual_seed(10)
    model = _trained_looking(torchvision.models.resnet18(num_classes=10))
    x = torch.randn(2, 3, 48, 48)
    targets = torch.tensor([4, 1])
    chosen = get_method(method)
    context = PathContext(model, x, x, [targets], None, MethodOptions(), (MEAN, STD))
    defaults = {s.name: s.default for s in chosen.all_settings}
    rules = replace(chosen.rules(defaults, context), bias=False)  # type: ignore[attr-defined]
    _, (found,), _ = relevance(model, x, [targets], rules)
    theirs = _zennit(model, x, method, targets, canonizers.ResNetCanonizer, zero_params=["bias"])
    error = ((found - theirs).norm() / theirs.norm()).item()
    assert error <= 1e-3, error


def _lite0(**kwargs) -> nn.Module:
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)


NO_CANONIZER = {
    "densenet121": lambda: torchvision.models.densenet121(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
    "efficientnet_lite0": lambda: _lite0(num_classes=10),
}


@pytest.mark.parametrize("arch", list(NO_CANONIZER))
def test_relevance_is_conserved_where_zennit_has_no_canonizer(arch: str) -> None:
    """With no bias anywhere (batch norms folded), no relevance can be absorbed, so each map
    sums to its logit: through dense concatenations, unfolded batch norms, ReLU6 caps,
    residual additions, squeeze-excitation gates and SiLU units. (z-plus is left out with
    SiLU: a unit whose contributions are all negative has a negative output there, not 0, and
    no positive contribution to hand its relevance to, as the rule intends.)"""
    torch.manual_seed(4)
    x = torch.randn(2, 3, 64, 64)
    model = _trained_looking(NO_CANONIZER[arch](), zero_bias=True, data=torch.randn(8, 3, 64, 64))
    logits = model(x).detach()
    targets = logits.argmax(1)
    logit = logits.gather(1, targets.view(-1, 1))[:, 0]
    assert logit.abs().min() > 1e-3  # a test that can fail
    relu = arch != "efficientnet_b0"
    for method in ("lrp_epsilon_plus",) * relu + ("lrp_epsilon_gamma_box",):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuleCoverageWarning)
            found = _lrp(model, x, method, targets)
        total = found.maps.flatten(1).sum(1)
        assert torch.allclose(total, logit, rtol=1e-3, atol=1e-5), (method, total, logit)
        assert torch.allclose(found.values["relevance_sum"], total)
        assert torch.allclose(found.values["logit"], logit)


class Residual(nn.Module):
    """x (B, 2) -> a = relu(W x), s = a + x (in one of three spellings) -> v . s"""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.fc, self.head, self.spelling = nn.Linear(2, 2, bias=False), nn.Linear(2, 1), spelling
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
            self.head.weight.copy_(torch.tensor([[1.0, -2.0]]))
            self.head.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        a = torch.relu(self.fc(x))
        if self.spelling == "+":
            s = a + x
        elif self.spelling == "torch.add":
            s = torch.add(x, a)
        else:
            s = a.clone()
            s += x
        return self.head(s)


@pytest.mark.parametrize("spelling", ["+", "torch.add", "+="])
def test_a_residual_addition_by_hand(spelling: str) -> None:
    """LRP-epsilon at both layers, the addition split in proportion to its inputs, worked out
    with numbers: found in the graph whatever spelling made it."""
    x = torch.tensor([[3.0, 1.0]])
    a = torch.tensor([2.0, 7.0])  # relu([3 - 1, 6 + 1])
    s = a + x[0]  # [5, 8]
    logit = 5.0 - 16.0 + 0.5  # -10.5
    r_s = torch.tensor([5.0, -16.0]) * logit / logit  # head: s_k v_k R / z, z = logit
    r_a, r_x_skip = a * r_s / s, x[0] * r_s / s
    z = torch.tensor([2.0, 7.0])  # fc outputs (no bias)
    weights = torch.tensor([[1.0, -1.0], [2.0, 1.0]])
    r_x_fc = x[0] * (weights.T @ (r_a / z))
    expected = (r_x_fc + r_x_skip).view(1, 1, 1, 2)
    net = Residual(spelling)
    found = explain(net, x.view(1, 1, 1, 2), "lrp_epsilon_plus", target=0)
    assert torch.allclose(found.maps, expected, atol=1e-5), (found.maps, expected)
    # the bias of the head absorbed its share: the rest sums to the logit less it
    assert found.maps.sum().item() == pytest.approx(logit - 0.5 * logit / logit, abs=1e-4)


def test_z_plus_and_a_folded_batch_norm_by_hand() -> None:
    """z-plus at a convolution whose batch norm is folded in: a 1x1 convolution over two
    channels, worked out per pixel."""
    conv = nn.Conv2d(2, 1, 1, bias=False)
    bn = nn.BatchNorm2d(1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(1, 2, 1, 1))
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0 - bn.eps)  # sigma 2
        bn.weight.fill_(3.0)
        bn.bias.fill_(0.5)
    net = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        net[4].weight.fill_(1.0)
    x = torch.tensor([[[[2.0]], [[-3.0]]]])  # (1, 2, 1, 1)
    # folded: w' = w * 3 / 2 = [3, -1.5], b' = (0 - 1) * 1.5 + 0.5 = -1; z = 6 + 4.5 - 1 = 9.5
    logit = 9.5
    # z-plus: positive contributions x+ w'+ = 2 * 3, x- w'- = -3 * -1.5, b+ = 0: z+ = 10.5
    expected = torch.tensor([6.0, 4.5]).view(1, 2, 1, 1) * logit / 10.5
    found = explain(net, x, "lrp_epsilon_plus", target=0)
    assert torch.allclose(found.maps, expected, atol=1e-5), found.maps


class BrokenBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise RuntimeError("broken on purpose")


def _snapshot(model: nn.Module) -> tuple[dict, list[bool], list[bool]]:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def _same(model: nn.Module, before: tuple[dict, list[bool], list[bool]]) -> None:
    state, grads, training = before
    after = model.state_dict()
    assert state.keys() == after.keys()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert [p.requires_grad for p in model.parameters()] == grads
    assert [m.training for m in model.modules()] == training
    assert all(p.grad is None for p in model.parameters())


def test_folding_leaves_the_model_exactly_as_it_was_also_on_error() -> None:
    torch.manual_seed(6)
    model = _trained_looking(torchvision.models.resnet18(num_classes=10))
    model.layer2.train()  # a mixed train/eval model, as a user may hand over
    before = _snapshot(model)
    x = torch.randn(1, 3, 64, 64)
    for method in LRP:
        _lrp(model, x, method, torch.tensor([1]))
        _same(model, before)

    class Breaks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return BrokenBackward.apply(self.inner(x))

    with pytest.raises(RuntimeError, match="broken on purpose"):
        _lrp(Breaks(), x, "lrp_epsilon_gamma_box", torch.tensor([1]))
    _same(model, before)


def test_layers_without_a_rule_are_named_in_a_warning() -> None:
    """SiLU units pass relevance through, layer norms keep their gradient: each said once."""
    torch.manual_seed(7)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.SiLU(), nn.LayerNorm([4, 6, 6]), nn.ReLU(), nn.Flatten(),
        nn.Linear(144, 3),
    )  # fmt: skip
    with pytest.warns(RuleCoverageWarning) as caught:
        explain(net, torch.randn(2, 3, 8, 8), "lrp_epsilon_plus")
    (message,) = [str(w.message) for w in caught]
    assert "1 SiLU unit passed relevance through unchanged" in message
    assert "1 layer norm: backpropagated as the gradient" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain ReLU net: every layer has its rule, no warning
        plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
        explain(plain, torch.randn(2, 3, 8, 8), "lrp_epsilon_plus")


def test_the_box_rule_needs_its_bounds() -> None:
    """From the normalization (a LoadedModel), or given; never guessed."""
    torch.manual_seed(8)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="give low= and high="):
        explain(net, x, "lrp_epsilon_gamma_box")
    with pytest.raises(ValueError, match="low must be below high"):
        explain(net, x, "lrp_epsilon_gamma_box", low=1.0, high=-1.0)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # black -2, white 2
    given = explain(net, x, "lrp_epsilon_gamma_box", target=1, low=-2.0, high=2.0).maps
    _, (found,) = explain_batch(
        net, x, ["lrp_epsilon_gamma_box"], lambda _: [torch.tensor([1])], None, (mean, std)
    )
    assert torch.equal(given, found["lrp_epsilon_gamma_box"].maps)
    other = explain(net, x, "lrp_epsilon_gamma_box", target=1, low=-1.0, high=2.0).maps
    assert not torch.equal(given, other)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("coffee.jpg", "astronaut.jpg"):
        Image.open(ROOT / "sample_images" / name).convert("RGB").resize((128, 96)).save(
            folder / name
        )
    return folder


@pytest.mark.slow
def test_lrp_runs_through_every_command(photos: Path, tmp_path: Path) -> None:
    methods = [arg for name in LRP for arg in ("--method", name)]
    done = cli("explain", photos, "--out", tmp_path / "explain", *methods, "--set", "gamma=0.5",
               "--report")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(tmp_path / "explain")
    assert sorted(r["method"] for r in rows) == sorted(LRP * 2)
    for row in rows:  # the sum and the logit it started from, for conservation at a glance
        assert isinstance(row["relevance_sum"], float) and isinstance(row["logit"], float)
        assert row["epsilon"] == 1e-6
        assert row.get("gamma") == (0.5 if row["method"] == "lrp_epsilon_gamma_box" else None)
    assert "warning" not in done.stderr.lower()  # the offline model: every layer has a rule
    report = (tmp_path / "explain" / "report.html").read_text()
    assert all(f'"method":"{name}"' in report for name in LRP)
    judged = compare_evaluate_and_sanity(photos, tmp_path, "--method", "lrp_epsilon_gamma_box")
    assert judged == ["lrp_epsilon_gamma_box"]


def test_alpha_and_beta_must_differ_by_one(photos: Path, tmp_path: Path) -> None:
    done = cli("explain", photos, "--out", tmp_path, "--method", "lrp_epsilon_alpha2_beta1_flat",
               "--set", "alpha=3")  # fmt: skip
    assert done.returncode == 2
    assert "alpha - beta must be 1" in done.stderr
    assert not list(tmp_path.glob("*.png"))
