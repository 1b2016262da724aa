"""Batch norms folded into convolutions (saliency.models.folding): only where the model's code
proves that nothing else reads the convolution's output, with the same outputs and maps, and a
CAM that would read a folded convolution refused rather than given its norm's map."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from saliency import MethodOptions, explain, tuned
from saliency.files.inputs import collect_inputs
from saliency.models.folding import FoldedNorm, fold_batch_norms, folded_into
from saliency.models.loading import LoadedModel
from saliency.models.preprocess import Preprocessing
from saliency.pipeline.job import run_job
from saliency.pipeline.options import JobOptions
from tests.test_tuning import _with_statistics


class _Nested(nn.Module):
    """``self.norm(self.conv(x))``: folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


class _Skipped(nn.Module):
    """The convolution's own output is added back after its norm: not folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = self.norm(y)
        return self.head(torch.relu(z + y).mean((2, 3)))


class _Reused(nn.Module):
    """Folded at one call, read raw at another: not folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.norm(x)
        return (x + self.conv(x)).mean((2, 3))


class _WeightRead(nn.Module):
    """Its weight read outside the call: not folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.norm(x)
        return x.mean((2, 3)) + self.conv.weight.sum()


class _Standardized(nn.Conv2d):
    """A convolution that transforms its weight in its forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight - self.weight.mean()) / (self.weight.std() + 1e-5)
        return self._conv_forward(x, weight, self.bias)


@pytest.mark.parametrize(
    ("build", "folds"),
    [
        (_Nested, [("conv", "norm")]),
        (_Skipped, []),
        (_Reused, []),
        (_WeightRead, []),
        (lambda: nn.Sequential(_Standardized(3, 3, 3), nn.BatchNorm2d(3)), []),
        (lambda: nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3), nn.ReLU()), [("0", "1")]),
    ],
)
def test_folds_only_what_the_code_proves_and_computes_the_same(build, folds):
    torch.manual_seed(0)
    model = _with_statistics(build()).eval().double()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    fast = tuned(model)
    found = [(name, folded_into(m)) for name, m in fast.named_modules() if folded_into(m)]
    assert found == folds
    torch.testing.assert_close(fast(x), model(x), rtol=1e-12, atol=1e-12)


def test_a_norm_is_folded_by_hand_arithmetic():
    conv = nn.Conv2d(1, 1, 1)
    norm = nn.BatchNorm2d(1, eps=0.0).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0), conv.bias.fill_(1.0)
        norm.running_mean.fill_(3.0), norm.running_var.fill_(4.0)
        norm.weight.fill_(5.0), norm.bias.fill_(6.0)
    model = tuned(nn.Sequential(conv, norm))
    # 5 * (2x + 1 - 3) / 2 + 6 = 5x + 1
    assert model[0].weight.item() == 5.0 and model[0].bias.item() == 1.0
    assert isinstance(model[1], FoldedNorm)
    assert fold_batch_norms(model) == []  # folded once: nothing left


def test_a_cam_at_a_folded_convolution_is_refused_and_kept_on_asking():
    torch.manual_seed(0)
    model = _with_statistics(_Nested()).eval()
    x = torch.randn(2, 3, 12, 12)
    with pytest.raises(ValueError, match="'conv' has the batch norm 'norm' folded into"):
        explain(tuned(model), x, "gradcam", layer="conv")
    plain = explain(model, x, "gradcam", layer="conv")
    kept = explain(tuned(model, keep=["conv"]), x, "gradcam", plain.targets, layer="conv")
    torch.testing.assert_close(kept.maps, plain.maps, rtol=1e-4, atol=1e-6)
    at_norm = explain(tuned(model), x, "gradcam", plain.targets, layer="norm")
    torch.testing.assert_close(at_norm.maps, explain(model, x, "gradcam", layer="norm").maps,
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_a_folder_run_keeps_the_layer_it_is_given(tmp_path):
    """A folder run tunes its model on a CPU, but a --layer naming a convolution keeps it: the
    maps are those of the plain pass."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    torch.manual_seed(0)
    model = _with_statistics(_Nested()).eval()
    loaded = LoadedModel(
        "tiny", "test", model, [f"c{k}" for k in range(4)],
        Preprocessing(16, 16, (0.5,) * 3, (0.5,) * 3), torch.device("cpu"),
    )  # fmt: skip
    files = collect_inputs([str(photos)]).files
    maps = {}
    for tune in (True, False):
        layer = MethodOptions(batch_size=16, settings={"layer": "conv"})
        options = JobOptions(("gradcam",), method_options=layer, tuned=tune, save_raw=True)
        outcomes: list = []
        run_job(loaded, files, tmp_path / f"out{tune}", options, outcomes.append)
        assert [o.error for o in outcomes] == [None] * 2
        maps[tune] = sorted((tmp_path / f"out{tune}").rglob("*.npy"))
    assert maps[True] and len(maps[True]) == len(maps[False])
    for a, b in zip(maps[True], maps[False], strict=True):
        np.testing.assert_allclose(np.load(a), np.load(b), rtol=1e-4, atol=1e-6)
