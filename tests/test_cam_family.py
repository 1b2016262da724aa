"""The CAM family runs everywhere a method runs: explain (with SmoothGrad), compare, evaluate,
sanity and the report, from the command, on the offline model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from .commands import ROOT, cli, compare_evaluate_and_sanity
from .outputs_check import check_nothing_lost

SAMPLES = ROOT / "sample_images"
CAMS = ("gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam")
METHODS = [arg for name in CAMS for arg in ("--method", name)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("coffee.jpg", "astronaut.jpg"):
        Image.open(SAMPLES / name).convert("RGB").resize((128, 96)).save(folder / name)
    return folder


@pytest.mark.slow
def test_the_cams_explain_smooth_and_report(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cli("explain", photos, "--out", out, *METHODS, "--report")
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)
    assert sorted(r["method"] for r in rows) == sorted(CAMS * 2)
    assert {r["layer"] for r in rows} == {"bn2"}  # the offline model's default layer
    report = (out / "report.html").read_text()
    assert all(f'"method":"{name}"' in report for name in CAMS)
    smooth = cli("explain", photos, "--out", tmp_path / "smooth", "--method", "layercam",
                 "--smooth", "2", "--set", "layer=blocks.5")  # fmt: skip
    assert smooth.returncode == 0, smooth.stderr
    (row, _) = check_nothing_lost(tmp_path / "smooth")
    assert row["smooth"] == 2 and row["layer"] == "blocks.5"
    assert row["outputs"][0].endswith(".layercam_smooth.png")


@pytest.mark.slow
def test_the_cams_compare_evaluate_and_sanity(photos: Path, tmp_path: Path) -> None:
    compared = cli("compare", photos, "--out", tmp_path / "compare", *METHODS, "--grid")
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "compare" / "compare.png").is_file()
    evaluated = cli("evaluate", photos, "--out", tmp_path / "evaluate", *METHODS,
                    "--metric", "deletion", "--curve-steps", "4", "--fit", "resize")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    with open(tmp_path / "evaluate" / "evaluation.csv") as handle:
        scored = {row["method"] for row in csv.DictReader(handle)}
    assert set(CAMS) <= scored
    checked = cli("sanity", photos, "--out", tmp_path / "sanity", *METHODS, "--fit", "crop")
    assert checked.returncode == 0, checked.stderr
    verdicts = json.loads((tmp_path / "sanity" / "sanity.json").read_text())
    assert set(CAMS) <= {v["method"] for v in verdicts["verdicts"]}


@pytest.mark.slow
def test_scorecam_runs_through_every_command_at_a_narrow_layer(photos: Path, tmp_path: Path):
    """Score-CAM costs a forward per channel: at blocks.0 (16 channels) it is quick enough to
    take through every command."""
    args = ["--method", "scorecam", "--set", "layer=blocks.0"]
    done = cli("explain", photos, "--out", tmp_path / "explain", *args, "--report")
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(tmp_path / "explain")
    assert [r["layer"] for r in rows] == ["blocks.0", "blocks.0"]
    assert '"method":"scorecam"' in (tmp_path / "explain" / "report.html").read_text()
    assert compare_evaluate_and_sanity(photos, tmp_path, *args) == ["scorecam"]
