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


@pytest.mark.parametrize("arch", ["vgg11", "alexnet"])
def test_gradcam_matches_captum_layergradcam(arch):
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(2, 3, 96, 96)
    ours = explain(model, x, "gradcam")
    assert ours.layer == "features"
    coarse = captum_attr.LayerGradCam(model, model.features).attribute(
        x.clone(), target=ours.targets, relu_attributions=True
    )
    expected = captum_attr.LayerAttribution.interpolate(coarse, (96, 96), "bilinear").detach()
    scale = float(expected.abs().max())
    torch.testing.assert_close(ours.maps, expected, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("arch", ["vgg11", "alexnet"])
def test_guided_gradcam_matches_captum(arch):
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(2, 3, 96, 96)
    ours = explain(model, x, "guided_gradcam", [3, 7])
    expected = captum_attr.GuidedGradCam(model, model.features).attribute(
        x.clone(), target=ours.targets, interpolate_mode="bilinear"
    )
    scale = float(expected.abs().max())
    torch.testing.assert_close(ours.maps, expected, rtol=1e-4, atol=1e-5 * scale)


def test_integrated_gradients_matches_captum():
    model = torchvision.models.vgg11().eval()
    x = torch.randn(2, 3, 64, 64)
    baseline = torch.randn(1, 3, 64, 64) * 0.1
    ours = explain(model, x, "integrated_gradients", baseline=baseline, steps=8, batch_size=5)
    expected, delta = captum_attr.IntegratedGradients(model).attribute(
        x.clone(),
        baselines=baseline.expand_as(x),
        target=ours.targets,
        n_steps=8,
        method="gausslegendre",
        return_convergence_delta=True,
    )
    scale = float(expected.abs().max())
    torch.testing.assert_close(ours.maps, expected, rtol=1e-4, atol=1e-5 * scale)
    torch.testing.assert_close(ours.completeness, delta.float(), rtol=1e-3, atol=1e-4)


def test_gradient_x_input_matches_captum():
    model = torchvision.models.alexnet().eval()
    x = torch.randn(2, 3, 64, 64)
    ours = explain(model, x, "gradient_x_input")
    expected = captum_attr.InputXGradient(model).attribute(x.clone(), target=ours.targets)
    torch.testing.assert_close(ours.maps, expected)


def test_smoothgrad_agrees_with_captum_noisetunnel_in_expectation():
    """Different random draws, so the two Monte Carlo means agree only up to sampling error:
    with 2000 samples each, within a few percent of the map's norm (seeded, so repeatable)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 3),
    ).eval()
    x = torch.randn(1, 3, 8, 8)
    ours = explain(model, x, "guided", 1, smooth=2000, noise=0.15, batch_size=500)
    sigma = 0.15 * float(x.max() - x.min())
    tunnel = captum_attr.NoiseTunnel(captum_attr.GuidedBackprop(model))
    expected = tunnel.attribute(
        x.clone(),
        nt_type="smoothgrad",
        nt_samples=2000,
        nt_samples_batch_size=500,
        stdevs=sigma,
        target=1,
    )
    assert float((ours.maps - expected).norm() / expected.norm()) < 0.05
    single = explain(model, x, "guided", 1).maps  # far from both: the smoothing is real
    assert float((single - expected).norm() / expected.norm()) > 0.2
