"""Grad-CAM, Guided Grad-CAM, Integrated Gradients, Gradient x Input and SmoothGrad, each against
a hand-computed case or plain autograd (Captum is compared in test_against_captum.py)."""

import pytest
import timm
import torch
import torchvision
from torch import nn

import saliency
from saliency import explain
from saliency.engine.baselines import blur, make_baseline
from saliency.engine.layers import resolve_layer
from saliency.engine.passes import Stopped, forward_pass
from saliency.engine.registry import all_methods
from saliency.engine.smoothing import noise_samples, noise_scale
from saliency.methods.integrated_gradients import quadrature

X = torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]])  # (1, 1, 2, 2)
W = torch.tensor([[2.0, 1.0], [-1.0, 3.0]])


# the methods that explain a feature-map layer, as messages list them
LAYER_USERS = (
    "gradcam, guided_gradcam, gradcam_plus_plus, xgradcam, layercam, hirescam, eigencam "
    "and scorecam"
)


class TwoChannels(nn.Module):
    """x -> 1x1 conv to (x, -x) -> ReLU -> global average -> linear W, no biases."""

    def __init__(self, inplace_functional: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.conv.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2, bias=False)
        self.fc.weight.data = W.clone()
        self.inplace_functional = inplace_functional

    def forward(self, x):
        a = self.conv(x)
        a = torch.relu_(a) if self.inplace_functional else self.act(a)
        return self.fc(self.pool(a).flatten(1))


@pytest.mark.parametrize(
    "target, cam",
    [
        # class 0: weights alpha = W[0] / 4 = (0.5, 0.25); relu(0.5 relu(x) + 0.25 relu(-x))
        (0, [[0.5, 0.5], [1.5, 0.0]]),
        # class 1: alpha = (-0.25, 0.75): relu(-0.25 relu(x) + 0.75 relu(-x))
        (1, [[0.0, 1.5], [0.0, 0.0]]),
    ],
)
def test_gradcam_by_hand(target, cam):
    result = explain(TwoChannels(), X, "gradcam", target, layer="act")
    assert result.maps.shape == (1, 1, 2, 2) and result.layer == "act"
    torch.testing.assert_close(result.maps[0, 0], torch.tensor(cam))


def test_gradcam_default_layer_is_the_last_feature_map():
    assert explain(TwoChannels(), X, "gradcam", 0).layer == "act"


def test_gradcam_sees_the_layer_output_before_a_later_in_place_relu():
    """Layer 'conv' is followed by torch.relu_ on its own output. Its activation is the
    pre-ReLU (x, -x) and its gradient W[0, k] / 4 * [A_k > 0], so the channel weights are
    (0.5 * 2/4, 0.25 * 1/4) and the CAM relu(0.25 x - 0.0625 x) = relu(0.1875 x)."""
    result = explain(TwoChannels(inplace_functional=True), X, "gradcam", 0, layer="conv")
    torch.testing.assert_close(result.maps[0, 0], torch.tensor([[0.1875, 0.0], [0.5625, 0.0]]))


def test_guided_gradcam_by_hand():
    """Guided map for class 0: conv backward of max(g, 0) * mask = 0.5 * [x > 0] - 0.25 *
    [x < 0]; times the CAM [[0.5, 0.5], [1.5, 0]]."""
    result = explain(TwoChannels(), X, "guided_gradcam", 0, layer="act")
    torch.testing.assert_close(result.maps[0, 0], torch.tensor([[0.25, -0.125], [0.75, 0.0]]))


def test_gradcam_upsamples_bilinearly_to_the_input():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 70, 90)
    result = explain(model, x, "gradcam")
    assert result.maps.shape == (2, 1, 70, 90) and result.layer == "layer4"
    assert bool((result.maps >= 0).all())
    # the coarse CAM by autograd at layer4, upsampled
    acts = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    logits = model(x.requires_grad_())
    handle.remove()
    score = logits.gather(1, result.targets.view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(score, acts["a"])
    cam = (grads.mean((2, 3), keepdim=True) * acts["a"]).sum(1, keepdim=True).clamp(min=0)
    expected = nn.functional.interpolate(cam, (70, 90), mode="bilinear", align_corners=False)
    torch.testing.assert_close(result.maps, expected.detach(), rtol=1e-4, atol=1e-6)


def test_gradient_x_input_is_input_times_the_autograd_gradient():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 48, 48)
    result = explain(model, x, "gradient_x_input", [1, 3])
    xr = x.clone().requires_grad_()
    score = model(xr)[[0, 1], [1, 3]].sum()
    (grad,) = torch.autograd.grad(score, xr)
    torch.testing.assert_close(result.maps, grad * x)


class Hinge(nn.Module):
    """f(x) = sum relu(x - 1): along the path from 0 to x = 3 the gradient is [3a > 1]."""

    def forward(self, x):
        return torch.relu(x - 1).flatten(1).sum(1, keepdim=True)


def test_integrated_gradients_by_hand():
    """IG of relu(x - 1) at x = 3 from 0 is 3 * (2/3) = 2 = f(3) - f(0) (completeness); a
    32-point quadrature of the step [a > 1/3] comes close, and its error is what is reported."""
    x = torch.full((1, 1, 1, 1), 3.0)
    result = explain(Hinge(), x, "integrated_gradients", 0, baseline="zero", steps=32)
    alphas, weights = quadrature(32)
    expected = 3.0 * float(weights[alphas > 1 / 3].sum())
    assert float(result.maps) == pytest.approx(expected, rel=1e-6)
    assert abs(float(result.maps) - 2.0) < 0.1
    assert float(result.score_difference) == pytest.approx(2.0)
    assert float(result.completeness) == pytest.approx(expected - 2.0, abs=1e-6)


def test_integrated_gradients_is_exact_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    x = torch.randn(2, 3, 4, 4)
    base = torch.randn(1, 3, 4, 4)
    result = explain(model, x, "integrated_gradients", 2, baseline=base, steps=3)
    weight = model[1].weight[2].view(1, 3, 4, 4)
    torch.testing.assert_close(result.maps, (x - base) * weight)
    assert float(result.completeness.abs().max()) < 1e-4


def test_integrated_gradients_completeness_improves_with_steps():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)
    )
    x = torch.randn(1, 3, 7, 7) * 3
    errors = [
        abs(
            float(
                explain(model, x, "integrated_gradients", 0, steps=n, baseline="zero").completeness
            )
        )
        for n in (2, 512)
    ]
    assert errors[1] < 0.05 * errors[0]  # not monotone step by step: the net is piecewise linear


def test_integrated_gradients_batching_does_not_change_the_result():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(3, 3, 40, 40)
    a = explain(model, x, "integrated_gradients", baseline="blurred", steps=5, batch_size=4)
    b = explain(model, x, "integrated_gradients", baseline="blurred", steps=5, batch_size=64)
    c = explain(model, x[1:2], "integrated_gradients", baseline="blurred", steps=5)
    torch.testing.assert_close(a.maps, b.maps, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.maps[1:2], c.maps, rtol=1e-4, atol=1e-6)


def test_black_baseline_from_the_loaded_models_normalization():
    loaded = saliency.load_model("efficientnet_lite0", weights="random")
    x = torch.randn(1, 3, 32, 32)
    black = make_baseline(x, "black", (loaded.preprocessing.mean, loaded.preprocessing.std))
    torch.testing.assert_close(black, torch.full_like(x, -1.0))  # mean = std = 0.5
    result = explain(loaded, x, "integrated_gradients", steps=2)
    assert result.maps.shape == x.shape
    with pytest.raises(ValueError, match="LoadedModel"):
        explain(loaded.model, x, "integrated_gradients", steps=2)


def test_blur_keeps_constants_and_the_mean_of_a_periodic_image():
    assert torch.allclose(blur(torch.full((1, 3, 9, 7), 2.5), 3.0), torch.full((1, 3, 9, 7), 2.5))
    stripes = torch.tensor([0.0, 1.0]).repeat(16).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    blurred = blur(stripes, 4.0)
    assert float((blurred - 0.5).abs().max()) < 0.01


def test_smoothgrad_is_the_mean_over_the_documented_noise():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 40, 40)
    result = explain(model, x, "gradient", [0, 4], smooth=5, noise=0.2, seed=7, batch_size=3)
    draws = noise_samples((3, 40, 40), 5, seed=7)
    sigma = noise_scale(x, 0.2)
    expected = torch.zeros_like(x)
    for draw in draws:
        noisy = (x + sigma * draw).requires_grad_()
        score = model(noisy)[[0, 1], [0, 4]].sum()
        expected += torch.autograd.grad(score, noisy)[0] / 5
    torch.testing.assert_close(result.maps, expected, rtol=1e-4, atol=1e-7)
    assert result.smooth == 5


@pytest.mark.parametrize("method", ["guided", "gradcam", "gradient_x_input"])
def test_smoothgrad_wraps_any_method(method):
    model = torchvision.models.vgg11(num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    result = explain(model, x, method, 1, smooth=3, noise=0.1, seed=3)
    sigma = noise_scale(x, 0.1)
    draws = noise_samples((3, 32, 32), 3, seed=3)
    expected = sum(explain(model, x + sigma * d, method, 1).maps for d in draws) / 3
    torch.testing.assert_close(result.maps, expected, rtol=1e-4, atol=1e-7)


def test_smoothgrad_targets_are_the_clean_predictions_and_per_image_noise_is_stable():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(3, 3, 32, 32)
    clean = explain(model, x, "gradient").targets
    together = explain(model, x, "guided", smooth=4)
    alone = explain(model, x[2:], "guided", smooth=4)
    assert torch.equal(together.targets, clean)
    torch.testing.assert_close(together.maps[2:], alone.maps, rtol=1e-4, atol=1e-7)
    again = explain(model, x, "guided", smooth=4)
    assert torch.equal(together.maps, again.maps)
    other = explain(model, x, "guided", smooth=4, seed=1)
    assert not torch.equal(together.maps, other.maps)


def test_default_layers_of_common_cnns():
    x = torch.zeros(1, 3, 64, 64)
    cases = {
        "resnet18": "layer4",
        "vgg11": "features",
        "densenet121": "features",
        "mobilenet_v2": "features",
        "squeezenet1_1": "classifier.2",
    }
    for name, layer in cases.items():
        model = torchvision.models.get_model(name, num_classes=4).eval()
        assert resolve_layer(model, x) == layer, name
    lite0 = timm.create_model("tf_efficientnet_lite0", num_classes=4).eval()
    assert resolve_layer(lite0, x) == "bn2"


def test_unknown_or_unusable_layers_name_the_candidates():
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(1, 3, 48, 48)
    with pytest.raises(ValueError, match=r"'layer5' is not a submodule; did you mean layer4"):
        explain(model, x, "gradcam", layer="layer5")
    with pytest.raises(ValueError, match=r"'fc' outputs shape \(1, 4\).*deepest first: layer4,"):
        explain(model, x, "gradcam", layer="fc")
    with pytest.raises(ValueError, match="'layer4.0.relu' runs 2 times"):
        explain(model, x, "gradcam", layer="layer4.0.relu")
    with pytest.raises(ValueError, match="'avgpool' is a pooling"):
        explain(model, x, "gradcam", layer="avgpool")
    with pytest.raises(
        ValueError,
        match=f"used only by {LAYER_USERS}, not by guided",
    ):
        explain(model, x, "guided", layer="layer4")
    assert explain(model, x, "gradcam", layer="layer3").layer == "layer3"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"smooth": -1}, "smooth must be"),
        ({"smooth": 2, "noise": 0.0}, "noise must be"),
        ({"steps": 0}, "integrated_gradients: steps must be a whole number >= 1, got 0"),
        ({"steps": 2.5}, "integrated_gradients: steps must be a whole number >= 1, got 2.5"),
        (
            {"baseline": "white"},
            "integrated_gradients: baseline must be one of black, zero, blurred, or a tensor, "
            "got 'white'",
        ),
        ({"layer": "x"}, f"layer is used only by {LAYER_USERS}, not by integrated_gradients"),
        (
            {"stepz": 3},
            "unknown setting 'stepz'; the methods' settings are alpha, baseline, beta, cells",
        ),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_bad_method_settings_are_refused(kwargs, message):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=message):
        explain(model, torch.zeros(1, 3, 8, 8), "integrated_gradients", **kwargs)


def test_one_forward_serves_every_single_pass_method():
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(2, 3, 40, 40)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(1))
    # every method with shared passes that a CNN has what it needs for (no attention)
    names = [m.name for m in all_methods() if m.passes and "attention" not in m.requires]
    assert len(names) >= 6
    with forward_pass(model, x, capture=True) as graph:
        many = {n: maps for n, (maps, _) in graph.shared(names, torch.tensor([1, 2])).items()}
    probes = len(calls) - 1
    assert probes <= 1  # the default layer is found by one probe, kept per model
    for name in names:
        alone = explain(model, x, name, [1, 2]).maps
        torch.testing.assert_close(many[name], alone)
    torch.testing.assert_close(many["guided_gradcam"], many["guided"] * many["gradcam"])


def test_an_expanded_batch_stops_between_passes_when_asked():
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    options = saliency.MethodOptions(batch_size=2, settings={"steps": 8, "baseline": "zero"})
    with pytest.raises(Stopped):
        saliency.explain_batch(
            model, x, ["integrated_gradients"], lambda t: [t.argmax(1)], options, None, stop
        )
    assert len(asked) == 3  # 8 passes of 2 were due; it stopped before the third
