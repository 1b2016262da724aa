"""The tuned pass (batch norm as per-channel scales, channels_last weights) computes the maps the
model as loaded computes, on every architecture of the rule-engine zoo, and a folder run uses
it where it should."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.layers import BatchNormAct2d
from torch import nn

from saliency import explain, get_method, tuned
from saliency.files.inputs import collect_inputs
from saliency.models.folding import FoldedNorm, folded_into
from saliency.models.loading import LoadedModel
from saliency.models.preprocess import Preprocessing
from saliency.models.tuning import tunes, why_not_tuned
from saliency.pipeline.job import run_job
from saliency.pipeline.options import JobOptions
from tests.commands import cli
from tests.test_architectures import ARCHITECTURES

METHODS = ("gradient", "deconvnet", "guided", "gradcam", "integrated_gradients")
SETTINGS = {"integrated_gradients": {"steps": 2, "baseline": "zero"}}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _with_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with every batch norm given running statistics and an affine map of its own
    (a fresh model's are 0, 1, 1 and 0, under which a wrongly folded norm would go unseen)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and module.running_var is not None:
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return model


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_tuned_maps_equal_the_models_in_float64(arch):
    """In float64 the summation order is no longer visible: what is left is whether the tuned
    pass computes the same function with the same rules at the same units."""
    build, size = ARCHITECTURES[arch]
    model = _with_statistics(build())
    if arch == "vgg11_bn":  # its 400 MB head in float64 would be most of this test's time
        model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
    model = model.double()
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    fast = tuned(model)
    for method in METHODS:
        plain = explain(model, x, method, **SETTINGS.get(method, {}))
        quick = explain(fast, x, method, plain.targets, **SETTINGS.get(method, {}))
        assert _relative(quick.maps, plain.maps) < 1e-10, method
        assert quick.report.units == plain.report.units, method


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "resnet18", "mobilenet_v2"])
def test_tuned_maps_within_float32_tolerance(arch):
    """In float32 (what runs) within 1e-4 relative L2 on these nets; deeper max pooling (VGG's)
    can flip a switch on a near-tie and move a plain gradient more (docs/performance.md)."""
    build, size = ARCHITECTURES[arch]
    model = _with_statistics(build()).eval()
    x = torch.randn(2, 3, size, size)
    fast = tuned(model)
    for method in METHODS:
        plain = explain(model, x, method, **SETTINGS.get(method, {}))
        quick = explain(fast, x, method, plain.targets, **SETTINGS.get(method, {}))
        assert _relative(quick.maps, plain.maps) <= 1e-4, method


def test_tuned_replaces_every_norm_and_leaves_the_model_as_it_was():
    model = timm.create_model("tf_efficientnet_lite0").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    fast = tuned(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, BatchNormAct2d)) for m in fast.modules())
    # every norm of Lite0 follows a convolution that only it reads: all are folded
    assert sum(isinstance(m, nn.BatchNorm2d | BatchNormAct2d) for m in model.modules()) == 49
    assert sum(isinstance(m, FoldedNorm) for m in fast.modules()) == 49
    assert isinstance(fast.bn2, FoldedNorm) and isinstance(fast.bn2.act, nn.ReLU6)  # kept
    assert folded_into(fast.conv_head) == "bn2" and folded_into(model.conv_head) is None
    assert fast.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert [type(m) for m in model.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.conv_stem.weight.is_contiguous()


class _OwnNorm(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


def test_norms_without_running_statistics_and_subclasses_are_kept():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
        nn.Conv2d(4, 4, 3), _OwnNorm(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
    ).eval()  # fmt: skip
    fast = tuned(_with_statistics(model))
    assert type(fast[1]) is nn.BatchNorm2d and type(fast[4]) is _OwnNorm
    assert isinstance(fast[7], FoldedNorm) and folded_into(fast[6]) == "7"
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(fast(x), model(x))


def _bare(device: torch.device) -> LoadedModel:
    size = Preprocessing(8, 8, (0.0,) * 3, (1.0,) * 3)
    return LoadedModel("m", "test", nn.Identity(), [], size, device)


def test_where_a_run_is_tuned():
    cpu = _bare(torch.device("cpu"))
    guided, lrp = get_method("guided"), get_method("lrp_epsilon_plus")
    assert tunes(cpu, [guided], None) and not tunes(cpu, [guided], False)
    assert not tunes(cpu, [guided, lrp], None)  # LRP folds the batch norms itself
    with pytest.raises(ValueError, match="lrp_epsilon_plus"):
        tunes(cpu, [lrp], True)
    from saliency.tasks import get_kind

    assert "detector" in str(why_not_tuned(get_kind("detection"), [guided]))
    gpu = _bare(torch.device("cuda", 0))
    assert not tunes(gpu, [guided], None) and tunes(gpu, [guided], True)


SEEN: list[str] = []


class _Telling(nn.Module):
    """A tiny classifier that records the type of its batch norm at each forward pass (a
    module-level list, so that a copy of it records there too)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        SEEN.append(type(self.norm).__name__)
        return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


@pytest.mark.parametrize(("asked", "method", "expected"), [
    (None, "guided", "FoldedNorm"), (False, "guided", "BatchNorm2d"),
    (None, "lrp_epsilon_plus", "BatchNorm2d"),
])  # fmt: skip
def test_a_folder_run_uses_the_tuned_pass_on_a_cpu(tmp_path, asked, method, expected):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    model = _Telling().eval()
    loaded = LoadedModel(
        "tiny", "test", model, [f"c{k}" for k in range(5)],
        Preprocessing(16, 16, (0.5,) * 3, (0.5,) * 3), torch.device("cpu"),
    )  # fmt: skip
    SEEN.clear()
    options = JobOptions(methods=(method,), tuned=asked)
    outcomes: list = []
    run_job(loaded, collect_inputs([str(photos)]).files, tmp_path / "out", options, outcomes.append)
    assert [o.error for o in outcomes] == [None] * 3
    assert set(SEEN) == {expected}
    assert type(model.norm) is nn.BatchNorm2d  # the caller's model is not changed


def test_the_command_refuses_a_tuned_pass_for_lrp(tmp_path):
    result = cli("explain", "sample_images/chelsea.png", "--out", tmp_path / "out",
                 "--method", "lrp_epsilon_plus", "--tuned-pass")  # fmt: skip
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()
    assert "--tuned-pass: the rules of lrp_epsilon_plus read the model's layers" in result.stderr
