"""Segmentation in the command (issue 34): without ``--target``, a picture per class present in
each photo, the class's region outlined on it; resumed per image by what its rows say was
found; an image with nothing found but the background gets a row that says so, and the report
shows all of it (in a real browser).

The model is a seeded random-initialised LR-ASPP (``weights=None, weights_backbone=None``) with
calibrated batch-norm statistics; the classes it finds are computed here with the plain model,
independently of the command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageFilter

from tests.commands import cli
from tests.outputs_check import check_nothing_lost, manifest_rows
from tests.test_beyond_classifiers import SAMPLES, calibrated

MODEL = "lraspp_mobilenet_v3_large"
VOC = torchvision.models.segmentation.LRASPP_MobileNet_V3_Large_Weights.DEFAULT.meta["categories"]
NAMES = ("chelsea.png", "coffee.jpg")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same seeded weights in every process."""
    torch.manual_seed(0)
    model = calibrated(torchvision.models.get_model(MODEL, weights=None, weights_backbone=None))
    path = tmp_path_factory.mktemp("segmentation") / "seg.pth"
    torch.save(model.state_dict(), path)
    return path


def labels_of(weights: Path, name: str) -> torch.Tensor:
    """The class of each pixel of the model's input for a sample photo (``--fit resize``)."""
    from saliency import load_image, load_model

    loaded = load_model(MODEL, weights=weights)
    x, _ = loaded.preprocess(load_image(SAMPLES / name), "resize")
    with torch.no_grad():
        return loaded.model(x[None])["out"][0].argmax(dim=0)


def present(labels: torch.Tensor) -> list[int]:
    return [c for c in torch.unique(labels).tolist() if c != 0]


def photos_folder(root: Path, names: tuple[str, ...] = NAMES) -> Path:
    """A folder ``photos`` under ``root`` with copies of the sample photos ``names``."""
    folder = root / "photos"
    folder.mkdir()
    for name in names:
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def explain(photos: Path, out: Path, weights: Path, *extra: object) -> Any:
    methods = ("--method", "gradcam", "--method", "gradient")
    return cli("explain", photos, "--out", out, "--model", MODEL, "--weights", weights,
               *methods, "--fit", "resize", *extra)  # fmt: skip


def edge_zone(labels: torch.Tensor, category: int, size: tuple[int, int], reach: int) -> np.ndarray:
    """Where the region of ``category`` meets other classes, on the photo (``size``), widened
    by ``reach`` pixels: the class's mask enlarged (nearest), its pixels with a neighbour of
    another class."""
    mask = Image.fromarray((labels == category).numpy().astype(np.uint8) * 255)
    big = np.asarray(mask.resize(size, Image.Resampling.NEAREST)) > 0
    edge = np.zeros_like(big)
    edge[1:] |= big[1:] != big[:-1]
    edge[:-1] |= big[1:] != big[:-1]
    edge[:, 1:] |= big[:, 1:] != big[:, :-1]
    edge[:, :-1] |= big[:, 1:] != big[:, :-1]
    wide = Image.fromarray(edge.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * reach + 1))
    return np.asarray(wide) > 0


def white(path: Path) -> np.ndarray:
    return (np.asarray(Image.open(path).convert("RGB")) == 255).all(axis=-1)


def test_a_picture_per_class_present_with_its_region_outlined(tmp_path: Path, weights: Path):
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    done = explain(photos, out, weights, "--style", "heatmap")  # white is no heatmap colour
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)
    for name in NAMES:
        labels = labels_of(weights, name)
        classes = present(labels)
        assert classes  # the seeded model finds classes in both photos
        stem = Path(name).stem
        mine = [r for r in rows if Path(r["image"]).name == name]
        assert {r["outputs"][0] for r in mine} == {
            f"{stem}.{method}.{c}.png" for method in ("gradcam", "gradient") for c in classes
        }
        for row in mine:
            assert row["found"] == [str(c) for c in classes]
            # a checkpoint of the architecture's own class count keeps its names (VOC's), as
            # --weights random does (it said "class 10")
            assert row["target_name"] == VOC[row["target"]]
            share = float((labels == row["target"]).float().mean())
            assert abs(row["pixel_share"] - share) < 1e-3
            outlined = white(out / row["outputs"][0])
            size = outlined.shape[::-1]
            assert outlined.sum() > 0, row["outputs"][0]
            # every outlined pixel lies on the class's edge, and the outline follows it
            zone = edge_zone(labels, row["target"], size, reach=6)
            assert outlined[zone].sum() == outlined.sum(), row["outputs"][0]
    assert f"{len(rows)} maps written" in done.stderr


def test_the_device_path_outlines_as_the_cpu_path(tmp_path: Path, weights: Path) -> None:
    photos = photos_folder(tmp_path)
    for out, extra in ((tmp_path / "cpu", ()), (tmp_path / "device", ("--device-pipeline",))):
        done = explain(photos, out, weights, "--format", "png", *extra)
        assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "cpu").glob("*.png"))
    assert names == sorted(p.name for p in (tmp_path / "device").glob("*.png")) and names
    for name in names:
        cpu, device = white(tmp_path / "cpu" / name), white(tmp_path / "device" / name)
        assert (cpu & device).sum() / (cpu | device).sum() > 0.9, name
        a = np.asarray(Image.open(tmp_path / "cpu" / name), dtype=float)
        b = np.asarray(Image.open(tmp_path / "device" / name), dtype=float)
        assert np.abs(a - b).mean() < 2, name


def test_a_rerun_redoes_an_image_whose_classes_changed_and_drops_the_stale(
    tmp_path: Path, weights: Path
) -> None:
    """Rows say what was found: a rerun keeps an image whose every found class has its fresh
    picture; an image whose rows claim another class is looked at again, and the rows and
    pictures of classes it no longer has go."""
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    assert explain(photos, out, weights).returncode == 0
    again = explain(photos, out, weights)
    assert again.returncode == 0 and "2 already done" in again.stderr, again.stderr

    # chelsea's rows claim a class the model does not find: Gradient's have no picture of it
    # (so they are not all there), Grad-CAM's have one of ours, made with other settings (as
    # by another model, so not fresh)
    classes = present(labels_of(weights, "chelsea.png"))
    stale = next(c for c in range(1, 21) if c not in classes)
    manifest = out / "results.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    claimed = [str(c) for c in sorted([*classes, stale])]
    for row in rows:
        if Path(row["image"]).name == "chelsea.png":
            row["found"] = claimed
    copy = dict(next(r for r in rows if r["outputs"][0] == f"chelsea.gradcam.{classes[0]}.png"))
    copy.update(outputs=[f"chelsea.gradcam.{stale}.png"], target=stale, fingerprint="0" * 32)
    shutil.copy(out / f"chelsea.gradcam.{classes[0]}.png", out / f"chelsea.gradcam.{stale}.png")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*rows, copy]))

    redone = explain(photos, out, weights)
    assert redone.returncode == 0 and "1 already done" in redone.stderr, redone.stderr
    rows = check_nothing_lost(out)
    chelsea = [r for r in rows if Path(r["image"]).name == "chelsea.png"]
    assert sorted({r["target"] for r in chelsea}) == classes
    assert all(r["found"] == [str(c) for c in classes] for r in chelsea)
    assert not (out / f"chelsea.gradcam.{stale}.png").exists()
    assert len(rows) == len(list(out.glob("*.png")))


def nothing_run(photos: Path, out: Path, weights: Path) -> list[Any]:
    """Every class ignored: the model finds nothing in any photo."""
    from saliency import load_model
    from saliency.files.inputs import collect_inputs
    from saliency.pipeline.job import run_job
    from saliency.pipeline.options import JobOptions
    from saliency.tasks.segmentation import PresentPlan

    loaded = load_model(MODEL, weights=weights)
    options = JobOptions(
        methods=("gradcam", "gradient"), fit="resize",
        target=PresentPlan(ignore=tuple(range(21))),
    )  # fmt: skip
    outcomes: list[Any] = []
    run_job(loaded, collect_inputs([str(photos)]).files, out, options, outcomes.append)
    return outcomes


def test_an_image_with_nothing_found_gets_a_row_that_says_so(tmp_path: Path, weights: Path):
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    outcomes = nothing_run(photos, out, weights)
    assert [o.error for o in outcomes] == [None, None]
    assert all(len(o.warnings) == 2 and "no class present" in o.warnings[0] for o in outcomes)
    rows = check_nothing_lost(out)
    assert sorted((Path(r["image"]).name, r["method"]) for r in rows) == sorted(
        (name, method) for name in NAMES for method in ("gradcam", "gradient")
    )
    assert all(r["status"] == "ok" and r["outputs"] == [] and r["found"] == [] for r in rows)
    assert not list(out.glob("*.png"))
    again = nothing_run(photos, out, weights)
    assert all(o.done for o in again) and manifest_rows(out) == rows


def test_a_segmentation_report_in_the_browser(browser: Any, tmp_path: Path, weights: Path):
    """A card per photo with a picture per class present, labelled by class and carrying the
    region's share; a photo with nothing found says so on its card, not as a failure."""
    from tests.test_report import Page

    photos, out = photos_folder(tmp_path), tmp_path / "out"
    done = explain(photos, out, weights, "--report")
    assert done.returncode == 0, done.stderr
    report = Page(browser, out / "report.html")
    page = report.open()
    assert sorted(report.cards()) == sorted(NAMES)
    assert report.images_decoded() == []
    maps = [a for a in page.eval_on_selector_all("#cards img", "els => els.map(e => e.alt)")
            if " map " in a]  # fmt: skip
    assert len(maps) == len(manifest_rows(out))
    text = page.locator("#cards").text_content()
    # captions as a person reads them, not "pixel_share 1, region_probability 0.055731"
    assert "% of pixels" in text and "mean probability over the region" in text
    assert "pixel_share" not in text and "region_probability" not in text
    assert all(VOC[c] in text for c in present(labels_of(weights, "chelsea.png")))
    assert page.locator(".card.error").count() == 0 and report.problems == []

    nothing = tmp_path / "nothing"
    nothing_run(photos, nothing, weights)
    made = cli("report", nothing)
    assert made.returncode == 0, made.stderr
    report = Page(browser, nothing / "report.html")
    page = report.open()
    assert page.locator(".card .note").count() == 2 * 2  # per photo, per method
    assert "no class present but the background" in page.locator("#cards").text_content()
    assert page.locator(".card.error").count() == 0 and report.problems == []


def test_an_unknown_class_lists_the_few_there_are(tmp_path: Path, weights: Path) -> None:
    """A segmentation's 21 classes are few: an unknown name lists them all (it listed none)."""
    done = explain(photos_folder(tmp_path), tmp_path / "out", weights, "--target", "sofaa")
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "unknown class name 'sofaa'; the 21 classes: 0 (__background__), 1 (aeroplane)" in said
    assert "18 (sofa)" in said and not (tmp_path / "out").exists()
