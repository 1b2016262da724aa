"""Occlusion and RISE, the forward-only perturbation methods: Occlusion equals Captum's
``Occlusion``; RISE follows from its definition and the seed alone; both run through every
command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from saliency import MethodOptions, explain
from saliency.engine.baselines import make_baseline
from saliency.methods.rise import rise_masks

from .commands import ROOT, cli, compare_evaluate_and_sanity
from .outputs_check import check_nothing_lost

captum_attr = pytest.importorskip("captum.attr")


def _model(arch: str) -> nn.Module:
    torch.manual_seed(5)
    model = getattr(torchvision.models, arch)(num_classes=10)
    for module in model.modules():  # trained-looking statistics, so scores vary
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(
    ("arch", "window", "stride", "baseline"),
    [
        ("resnet18", 8, 4, "zero"),
        ("resnet18", 10, 3, "blurred"),
        ("resnet18", 7, 7, "zero"),
        ("resnet18", 12, 5, "tensor"),
        ("vgg11", 12, 5, "tensor"),
        ("vgg11", 16, 9, "blurred"),
    ],
)
def test_occlusion_equals_captums(arch: str, window: int, stride: int, baseline: str) -> None:
    """Same window over all channels, stride and baseline; windows overhang the far edges
    (50 and 45 are not reached in whole strides) as Captum's do."""
    model = _model(arch)
    x = torch.randn(2, 3, 50, 45)
    chosen: str | torch.Tensor = torch.randn(1, 3, 1, 1) if baseline == "tensor" else baseline
    targets = torch.tensor([3, 7])
    ours = explain(model, x, "occlusion", target=targets, window=window, stride=stride,
                   baseline=chosen, batch_size=9)  # fmt: skip
    theirs = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
        baselines=make_baseline(x, chosen), target=targets, perturbations_per_eval=16,
    )  # fmt: skip
    assert ours.maps.shape == (2, 1, 50, 45)
    assert torch.equal(theirs[:, 0], theirs[:, 2])  # one value per pixel, as ours
    error = (ours.maps[:, 0] - theirs[:, 0]).abs().max() / theirs.abs().max()
    assert error <= 1e-4


def test_occlusion_refuses_a_stride_past_its_window_and_a_window_past_the_input() -> None:
    model = _model("resnet18")
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="stride 9 is larger than window 8"):
        explain(model, x, "occlusion", window=8, stride=9)
    with pytest.raises(ValueError, match="window 40 is larger than the input"):
        explain(model, x, "occlusion", window=40, stride=8)


def test_rise_masks_are_cut_from_grids_enlarged_by_one_cell() -> None:
    which = torch.arange(2000)
    masks = rise_masks(which, (30, 40), 2000, 5, 0.3, seed=1)
    assert masks.shape == (2000, 1, 30, 40)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - 0.3) < 0.01  # each pixel is kept with chance p
    again = rise_masks(which[[7, 3]], (30, 40), 2000, 5, 0.3, seed=1)
    assert torch.equal(again, masks[[7, 3]])  # a mask is its number's, asked alone or not
    assert not torch.equal(rise_masks(which[:1], (30, 40), 2000, 5, 0.3, seed=2), masks[:1])
    full = rise_masks(which[:3], (30, 40), 3, 5, 1.0, seed=0)
    torch.testing.assert_close(full, torch.ones_like(full))


class _Quadrant(nn.Module):
    """Two classes; class 1's logit grows with the mean of the top-left quadrant alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = x[:, :, :16, :16].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(seen), 8 * seen - 4], dim=1)


def test_rise_weighs_pixels_by_what_they_do_to_the_probability() -> None:
    x = torch.ones(1, 3, 32, 32)
    kept = explain(_Quadrant(), x, "rise", target=1, masks=1, p=1.0).maps
    probability = torch.sigmoid(torch.tensor(4.0))  # every mask keeps everything
    torch.testing.assert_close(kept, torch.full_like(kept, float(probability)))
    maps = explain(_Quadrant(), x, "rise", target=1, masks=600, cells=4).maps[0, 0]
    assert maps[:16, :16].mean() > maps[16:, 16:].mean() + 0.1  # where the score looks
    assert maps[:12, :12].mean() > maps[:16, :16].mean()  # most where masks change it most


def test_rise_maps_depend_on_the_seed_not_on_batching_or_order() -> None:
    model = _model("resnet18")
    x = torch.randn(3, 3, 40, 40)
    chosen = {"masks": 50, "cells": 4}
    first = explain(model, x, "rise", target=2, batch_size=7, **chosen)
    order = torch.tensor([2, 0, 1])
    shuffled = explain(model, x[order], "rise", target=2, batch_size=64, **chosen)
    torch.testing.assert_close(shuffled.maps, first.maps[order], rtol=1e-5, atol=1e-7)
    other = explain(model, x, "rise", target=2, seed=1, **chosen)
    assert not torch.allclose(other.maps, first.maps)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("coffee.jpg", "astronaut.jpg"):
        image = Image.open(ROOT / "sample_images" / name).convert("RGB")
        image.resize((128, 96)).save(folder / name)
    return folder


# a few forwards an image: 2 x 2 windows of the model's 224-pixel input, 4 masks
CHEAP = ["--method", "occlusion", "--method", "rise",
         "--set", "window=112", "--set", "stride=112", "--set", "masks=4"]  # fmt: skip


@pytest.mark.slow
def test_occlusion_and_rise_run_through_every_command(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    done = cli("explain", photos, "--out", out, *CHEAP, "--report")
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)
    assert sorted(r["method"] for r in rows) == ["occlusion"] * 2 + ["rise"] * 2
    rise = [r for r in rows if r["method"] == "rise"]
    assert all(r["masks"] == 4 and r["seed"] == 0 and r["p"] == 0.5 for r in rise)
    report = (out / "report.html").read_text()
    assert '"method":"occlusion"' in report and '"method":"rise"' in report
    kept = (out / "coffee.occlusion.png").stat().st_mtime_ns
    reseeded = cli("explain", photos, "--out", out, *CHEAP, "--seed", "1")
    assert reseeded.returncode == 0, reseeded.stderr  # redoing rise alone, with window given
    again = check_nothing_lost(out)
    assert sorted(r["seed"] for r in again if r["method"] == "rise") == [1, 1]
    assert (out / "coffee.occlusion.png").stat().st_mtime_ns == kept
    assert set(compare_evaluate_and_sanity(photos, tmp_path, *CHEAP)) == {"occlusion", "rise"}


def test_a_stride_past_the_window_is_a_usage_error(photos: Path, tmp_path: Path) -> None:
    refused = cli("explain", photos, "--out", tmp_path, "--method", "occlusion",
                  "--set", "window=8", "--set", "stride=9")  # fmt: skip
    assert refused.returncode == 2
    assert "stride 9 is larger than window 8" in refused.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_rise_inserts_better_than_a_random_map_on_photos(photos: Path, tmp_path: Path) -> None:
    """The offline model on a sample photo: the class probability rises sooner when RISE's
    pixels go in first than when a random map's do (0.34 against 0.08 measured)."""
    evaluated = cli("evaluate", photos / "astronaut.jpg", "--out", tmp_path, "--method", "rise",
                    "--set", "masks=120", "--metric", "insertion", "--curve-steps", "8",
                    "--fit", "resize")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    with open(tmp_path / "evaluation.csv") as handle:
        rows = list(csv.DictReader(handle))
    scores: dict[str, dict[str, float]] = {}
    for row in rows:
        scores.setdefault(row["method"], {})[row["image"]] = float(row["value"])
    assert all(scores["rise"][image] > scores["random"][image] for image in scores["random"])


def test_the_passes_inside_a_batch_are_told_as_they_run() -> None:
    """Score-CAM's channels, RISE's masks: an image can take minutes, so a caller can show the
    passes as they run."""
    from saliency.engine.progress import watching_passes

    model, x = _model("resnet18"), torch.randn(2, 3, 32, 32)
    told: list[tuple[int, int]] = []
    with watching_passes(lambda done, total: told.append((done, total))):
        explain(model, x, "rise", masks=10, batch_size=4)
        rise, told[:] = list(told), []
        explain(model, x[:1], "scorecam", layer="layer1", batch_size=48)
    assert rise == [(4, 20), (8, 20), (12, 20), (16, 20), (20, 20)]
    assert told == [(48, 64), (64, 64)]  # layer1 of ResNet-18 has 64 channels
    explain(model, x, "rise", masks=10)
    assert len(rise) == 5  # no watcher outside the block


def test_the_command_shows_the_passes_on_a_terminal(photos: Path, tmp_path: Path) -> None:
    shown = cli("explain", photos / "coffee.jpg", "--out", tmp_path, "--method", "rise",
                "--set", "masks=12", "--batch-size", "4",
                env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "passes" in shown.stderr and "12/12" in shown.stderr and "pass/s" in shown.stderr


@pytest.mark.slow
def test_two_shards_draw_the_same_pictures_as_one_process(photos: Path, tmp_path: Path) -> None:
    """RISE's masks come from the seed in every process; one pass a photo and one thread, so
    the float sums run in the same order everywhere."""
    args = [*CHEAP, "--batch-size", "1", "--workers", "1"]
    one = {"OMP_NUM_THREADS": "1"}
    single = cli("explain", photos, "--out", tmp_path / "single", *args, env=one)
    assert single.returncode == 0, single.stderr
    for index in range(2):
        shard = cli("explain", photos, "--out", tmp_path / "shards", *args,
                    "--shard", f"{index}/2", env=one)  # fmt: skip
        assert shard.returncode == 0, shard.stderr

    def pictures(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.glob("*.png")}

    assert len(pictures(tmp_path / "single")) == 4
    assert pictures(tmp_path / "shards") == pictures(tmp_path / "single")
    assert len(check_nothing_lost(tmp_path / "shards")) == 4


def test_rise_pictures_start_from_the_maps_minimum_while_its_maps_stay_as_defined() -> None:
    """Every pixel carries about the mean probability: drawn from zero, the picture would be
    one colour."""
    import numpy as np

    x = torch.ones(1, 3, 32, 32)
    found = explain(_Quadrant(), x, "rise", target=1, masks=300, cells=4)
    assert float(found.maps.min()) > 0.3  # the offset is in the maps
    picture = np.asarray(found.render(0, style="grayscale"), dtype=float)
    assert picture[:12, :12].mean() > 100 + picture[20:, 20:].mean()  # and not in the picture
    assert picture[20:, 20:].mean() < 100  # drawn from zero it would be about 190


def test_layer_reading_methods_read_it_in_the_pass_every_method_shares() -> None:
    """Eigen-CAM costs no pass of its own, Score-CAM one per channel and no more, beside a
    method with a backward pass or alone (the layers probed once per model before)."""
    from saliency import explain_batch

    model, x = _model("resnet18"), torch.randn(3, 3, 32, 32)
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
    explain(model, x[:1], "eigencam", layer="layer3")
    assert calls == [1, 1]  # the probe, then the shared forward
    calls.clear()
    alone = explain(model, x, "eigencam", layer="layer3", batch_size=2)
    assert calls == [2, 1]  # the shared forward, in batches of 2
    calls.clear()
    _, (found,) = explain_batch(
        model, x, ["guided", "eigencam", "scorecam"], lambda logits: [logits.argmax(1)],
        MethodOptions(settings={"layer": "layer3"}, batch_size=64),
    )  # fmt: skip
    assert calls[0] == 3  # one shared forward, then a masked copy per channel and image:
    assert calls[1:] == [64] * 12  # 3 x 256 (layer3 of ResNet-18) in passes of 64
    torch.testing.assert_close(found["eigencam"].maps, alone.maps, rtol=1e-4, atol=1e-4)
