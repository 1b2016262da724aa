"""What a new user meets, through the command as a user runs it (a subprocess): the same photo
scores 1 against itself, long runs say their cost, typos say what was meant, help fits a
terminal, offline weights are named in the command's own terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.commands import cli

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("pipeline", [(), ("--device-pipeline",)], ids=["cpu", "device"])
def test_a_photo_is_as_similar_to_itself_as_can_be(tmp_path: Path, pipeline: tuple) -> None:
    """``--similar-to`` a JPEG against itself scores 1 within float rounding (it scored 0.9967:
    the reference was decoded at full size, the photos at a reduced DCT scale; 0.9998 on the
    device pipeline, which decodes and resamples on the device), a large progressive JPEG
    too, and a PNG."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "grace_hopper.jpg").write_bytes((SAMPLES / "grace_hopper.jpg").read_bytes())
    Image.open(SAMPLES / "astronaut.jpg").resize((1024, 768)).save(
        photos / "wide.jpg", quality=90, progressive=True
    )
    (photos / "chelsea.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    for photo in sorted(photos.iterdir()):
        out = tmp_path / photo.stem
        done = cli("explain", photo, "--out", out, "--method", "gradient", "--similar-to", photo,
                   *pipeline)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (row,) = rows(out)
        assert row["similarity"] == pytest.approx(1.0, abs=2e-6), photo.name
