"""Captum as a second, independent reference on models where it is known to be correct."""

import pytest
import torch
import torchvision

from saliency import explain

captum_attr = pytest.importorskip("captum.attr")

CAPTUM = {
    "gradient": lambda m: captum_attr.Saliency(m),
    "deconvnet": lambda m: captum_attr.Deconvolution(m),
    "guided": lambda m: captum_attr.GuidedBackprop(m),
}


def captum_maps(model, x, method, targets):
    kwargs = {"abs": False} if method == "gradient" else {}
    return CAPTUM[method](model).attribute(x.clone(), target=targets, **kwargs)


@pytest.mark.parametrize("method", list(CAPTUM))
@pytest.mark.parametrize("arch", ["vgg11", "alexnet"])
def test_matches_captum_on_plain_relu_models(arch, method):
    """VGG and AlexNet use a distinct nn.ReLU module per unit, which Captum handles."""
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(2, 3, 64, 64)
    ours = explain(model, x, method)
    expected = captum_maps(model, x, method, ours.targets)
    scale = float(expected.abs().max())
    torch.testing.assert_close(ours.maps, expected, rtol=1e-4, atol=1e-5 * scale)


def test_captum_falls_back_to_the_gradient_on_relu6_where_we_do_not():
    model = torchvision.models.mobilenet_v2().eval()
    x = torch.randn(1, 3, 64, 64)
    plain = explain(model, x, "gradient").maps
    theirs = captum_maps(model, x, "guided", explain(model, x, "gradient").targets)
    ours = explain(model, x, "guided").maps
    torch.testing.assert_close(theirs, plain)  # Captum: "guided" is the plain gradient
    assert (ours - plain).norm() > 0.1 * plain.norm()
