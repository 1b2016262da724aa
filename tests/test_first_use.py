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


def test_a_report_made_from_elsewhere_finds_the_photos(tmp_path: Path) -> None:
    """The run started in one folder, the output in another, the report made from a third: the
    rows say where each photo was read, so every card has its photo (it found 5 of 10, or
    none, and emptied ``thumbs/photos``). Photos moved since keep the thumbnails made of them;
    where there are none, the command says which photos it could not find and how to help."""
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    (start / "photos").mkdir(parents=True)
    elsewhere.mkdir()
    for name in ("chelsea.png", "coffee.jpg"):
        (start / "photos" / name).write_bytes((SAMPLES / name).read_bytes())
    out = tmp_path / "results" / "out"
    done = cli("explain", "photos", "--out", out, "--method", "gradient", cwd=start)
    assert done.returncode == 0, done.stderr
    assert {row["image"] for row in rows(out)} == {"photos/chelsea.png", "photos/coffee.jpg"}
    assert {row["source"]["path"] for row in rows(out)} == {
        str(start / "photos" / name) for name in ("chelsea.png", "coffee.jpg")
    }

    def report() -> tuple[str, list[Path]]:
        made = cli("report", out, cwd=elsewhere)
        assert made.returncode == 0, made.stderr
        return made.stderr, sorted((out / "thumbs" / "photos").glob("*.jpg"))

    said, thumbs = report()
    assert len(thumbs) == 2 and "not found" not in said, said
    (start / "photos").rename(start / "moved")
    said, kept = report()  # the photos gone: their thumbnails stay, and are shown
    assert kept == thumbs and "not found" not in said, said
    for thumb in thumbs:
        assert f"thumbs/photos/{thumb.name}" in (out / "report.html").read_text()
        thumb.unlink()
    said, none = report()
    assert none == []
    assert "2 photos not found where the run read them" in said
    assert "photos/chelsea.png" in said and "--inputs-from" in said
