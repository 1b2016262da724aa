"""Picture formats and writer processes (issue 14): what is written, and that it does not depend
on how many processes wrote it or how the images were batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from saliency.pipeline.drawing import Encoding, is_ours
from saliency_cli.app import app
from tests.outputs_check import check_nothing_lost

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, size in (
        ("chelsea.png", (96, 72)),
        ("coffee.jpg", (80, 80)),
        ("rocket.jpg", (60, 90)),
    ):
        Image.open(SAMPLES / name).convert("RGB").resize(size).save(
            folder / f"{Path(name).stem}.png"
        )
    Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((70, 50)).save(
        folder / "sub" / "astronaut.jpg"
    )
    return folder


@pytest.mark.parametrize("fmt, pillow", [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_each_format_is_written_marked_and_decodes(photos: Path, tmp_path: Path, fmt, pillow):
    out = tmp_path / "out"
    result = run("explain", photos, "--out", out, "--format", fmt, "--method", "guided",
                 "--method", "gradcam", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = check_nothing_lost(out)
    assert len(rows) == 8
    for row in rows:
        picture = out / row["outputs"][0]
        assert picture.suffix == f".{fmt}" and is_ours(picture)
        with Image.open(picture) as image:
            assert image.format == pillow
    with Image.open(out / "sub" / f"astronaut.guided.{fmt}") as image:
        assert image.size == (70, 50)  # the photo's own size, whatever the format


def test_lossy_quality_changes_size_and_only_jpg_rows_are_redone(photos: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert run("explain", photos, "--out", out, "--format", "jpg", "--quality", "30").exit_code == 0
    low = (out / "chelsea.guided.jpg").stat().st_size
    assert run("explain", photos, "--out", out, "--format", "png").exit_code == 0
    result = run("explain", photos, "--out", out, "--format", "jpg", "--quality", "95")
    assert result.exit_code == 0 and "4 images" in result.output  # quality is in the fingerprint
    assert (out / "chelsea.guided.jpg").stat().st_size > low
    result = run("explain", photos, "--out", out, "--format", "png")
    assert "4 already done" in result.output  # the png pictures were kept all along
    assert len(check_nothing_lost(out)) == 8  # one row per picture: 4 png + 4 jpg


def test_outputs_do_not_depend_on_workers_or_batch_size(photos: Path, tmp_path: Path):
    pictures = {}
    for workers, batch in ((0, 1), (1, 3), (2, 16)):
        for fmt in ("png", "jpg"):
            out = tmp_path / f"out-{workers}-{batch}-{fmt}"
            result = run("explain", photos, "--out", out, "--workers", workers, "--batch-size",
                         batch, "--format", fmt, "--method", "guided", "--method", "gradient",
                         "--save-raw")  # fmt: skip
            assert result.exit_code == 0, result.output
            check_nothing_lost(out)
            files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix != ".jsonl")
            pictures[(workers, batch, fmt)] = {
                p.relative_to(out): p.read_bytes() for p in files if not p.name.startswith(".")
            }
    for fmt in ("png", "jpg"):
        first = pictures[(0, 1, fmt)]
        assert len(first) == 4 * 2 * 2 + 4  # pictures, raw maps, geometry files
        for key, files in pictures.items():
            if key[2] == fmt:
                assert files == first, key


def test_a_strangers_jpg_is_not_ours(tmp_path: Path):
    path = tmp_path / "x.guided.jpg"
    Image.new("RGB", (8, 8)).save(path, quality=90)
    assert not is_ours(path)
    Encoding("jpg").save(Image.new("RGB", (8, 8)), path, "overlay", "{}")
    assert is_ours(path)
    path.write_bytes(b"not an image")
    assert not is_ours(path)


@pytest.mark.parametrize(
    "setting, message",
    [({"format": "gif"}, "unknown format"), ({"quality": 0}, "quality"),
     ({"png_compression": 10}, "PNG compression")],
)  # fmt: skip
def test_bad_encodings_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        Encoding(**setting)


def test_jpg_pictures_match_png_ones_closely(photos: Path, tmp_path: Path):
    """The same picture in both formats: jpg at quality 90 is within a few levels of the png."""
    for fmt in ("png", "jpg"):
        assert run("explain", photos, "--out", tmp_path / fmt, "--format", fmt).exit_code == 0
    exact = np.asarray(Image.open(tmp_path / "png" / "chelsea.guided.png"), dtype=float)
    lossy = np.asarray(Image.open(tmp_path / "jpg" / "chelsea.guided.jpg"), dtype=float)
    assert np.abs(exact - lossy).mean() < 6


def test_worker_code_imports_no_torch():
    """Reader and writer processes import only this code: no torch, so they start fast."""
    import subprocess
    import sys

    code = (
        "import sys, saliency.pipeline.reading, saliency.pipeline.drawing;"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_writers_beside_a_gpu_take_the_cores_the_model_leaves_idle():
    """On the CPU the model's threads keep their cores; beside a GPU they sit idle, and one
    writer process encoding PNGs held an H200 run to 75 images/s: every core but two writes."""
    import os

    import torch

    from saliency.pipeline.job import default_writers

    cores = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert default_writers("cpu") == 1
        assert default_writers("cuda:0") == max(1, cores - 2)
    finally:
        torch.set_num_threads(threads)
