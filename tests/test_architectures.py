"""Real architectures with random weights against the patched-activation reference."""

import warnings

import pytest
import timm
import torch
import torchvision

from saliency import RuleCoverageWarning, explain
from tests.helpers import RULE_METHODS as METHODS
from tests.helpers import reference_gradient

# name -> (builder, input size); these cover nn.ReLU (reused, in-place), functional F.relu
# (DenseNet, GoogLeNet, Inception), ReLU6 (MobileNetV2, EfficientNet-Lite) and max/avg pooling.
ARCHITECTURES = {
    "resnet18": (lambda: torchvision.models.resnet18(), 64),
    "vgg11_bn": (lambda: torchvision.models.vgg11_bn(), 64),
    "densenet121": (lambda: torchvision.models.densenet121(), 64),
    "googlenet": (lambda: torchvision.models.googlenet(init_weights=True, aux_logits=False), 64),
    "inception_v3": (
        lambda: torchvision.models.inception_v3(init_weights=True, aux_logits=False),
        80,
    ),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), 64),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(), 64),
    "tf_efficientnet_lite0": (lambda: timm.create_model("tf_efficientnet_lite0"), 64),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_matches_reference(arch, method):
    build, size = ARCHITECTURES[arch]
    model = build()
    x = torch.randn(2, 3, size, size)
    result = explain(model, x, method)
    expected, calls = reference_gradient(model, x, method, result.targets)
    scale = expected.abs().max()
    assert scale > 0
    torch.testing.assert_close(result.maps, expected, rtol=1e-4, atol=1e-5 * float(scale))
    assert calls > 0
    # the true gradient hooks nothing, so its graph is not walked and its report is empty
    assert result.report.applied == (0 if method == "gradient" else calls)


def test_gradient_equals_autograd():
    model = torchvision.models.resnet18()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    model.eval()
    (expected,) = torch.autograd.grad(model(x)[:, 7].sum(), x)
    torch.testing.assert_close(explain(model, x, "gradient", 7).maps, expected)


def test_guided_differs_from_gradient_on_relu6():
    """Where Captum falls back to the plain gradient on ReLU6, the rule is really applied."""
    model = torchvision.models.mobilenet_v2()
    x = torch.randn(1, 3, 64, 64)
    plain = explain(model, x, "gradient").maps
    guided = explain(model, x, "guided")
    assert guided.report.units == {"ReLU6": 35}
    assert (plain - guided.maps).norm() > 0.1 * plain.norm()


def test_warns_on_other_activations():
    model = torchvision.models.mobilenet_v3_small()
    x = torch.randn(1, 3, 64, 64)
    with pytest.warns(RuleCoverageWarning) as record:
        explain(model, x, "guided")
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("guided: rule applied at") and "ReLU units" in message
    assert "Hardswish units kept the plain gradient" in message


def test_no_warning_when_every_activation_is_covered():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain(torchvision.models.resnet18(), torch.randn(1, 3, 64, 64), "deconvnet")
        explain(torchvision.models.mobilenet_v3_small(), torch.randn(1, 3, 64, 64), "gradient")
