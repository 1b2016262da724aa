"""PNG pictures through fpng: lossless (the same pixels as Pillow's), marked as ours, and the
same pictures whichever encoder a run had."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saliency.pipeline.drawing import MARKER, Encoding, is_ours
from saliency.pipeline.png import encoder_name, fast_png

from .commands import ROOT, cli

fpng = pytest.importorskip("fpng")


def _pictures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    photo = np.asarray(Image.open(ROOT / "sample_images" / "chelsea.png").convert("RGB"))
    smooth = np.linspace(0, 255, 61 * 3, dtype=np.uint8).reshape(61, 3, 1).repeat(3, axis=2)
    return {
        "photo": photo,
        "photo, odd size": photo[:333, :517],
        "noise": rng.integers(0, 256, (97, 131, 3), dtype=np.uint8),
        "flat": np.full((40, 40, 3), 7, dtype=np.uint8),
        "1x1": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
        "3x61": smooth.transpose(1, 0, 2).copy(),
        "rgba": rng.integers(0, 256, (31, 29, 4), dtype=np.uint8),
        "not contiguous": photo[::2, ::3],
    }


@pytest.mark.parametrize("name", list(_pictures()))
def test_fpng_is_lossless_and_keeps_our_marker(name: str) -> None:
    pixels = _pictures()[name]
    data = fast_png(pixels, MARKER, '{"fingerprint": "f", "source": "s"}')
    assert data is not None and encoder_name() == "fpng"
    pillow = io.BytesIO()
    Image.fromarray(pixels).save(pillow, "PNG", compress_level=1)
    with Image.open(io.BytesIO(data)) as ours, Image.open(pillow) as theirs:
        assert ours.text[MARKER] == '{"fingerprint": "f", "source": "s"}'  # before IDAT
        assert ours.mode == theirs.mode and ours.size == theirs.size
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
        assert np.array_equal(np.asarray(ours), pixels)


def test_encoding_writes_fpng_files_that_are_ours(tmp_path: Path) -> None:
    picture = Image.fromarray(_pictures()["photo"])
    Encoding().save(picture, tmp_path / "a.png", "overlay", "mark")
    data = (tmp_path / "a.png").read_bytes()
    assert b"fdEC" in data[:200]  # fpng's own chunk: fpng wrote it
    assert is_ours(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as decoded:
        assert np.array_equal(np.asarray(decoded), np.asarray(picture))
    gray = Image.fromarray(_pictures()["flat"][:, :, 0])  # a mode fpng does not take: Pillow's
    Encoding().save(gray, tmp_path / "b.png", "heatmap", "mark")
    assert is_ours(tmp_path / "b.png") and b"fdEC" not in (tmp_path / "b.png").read_bytes()


@pytest.mark.slow
def test_a_run_draws_the_same_pictures_with_fpng_and_with_pillow(tmp_path: Path) -> None:
    """Every picture of a real run, decoded, is the same with either encoder; each run knows
    the other's files as its own (a rerun keeps them)."""
    photos = ROOT / "sample_images"
    fast = cli("explain", photos, "--out", tmp_path / "fast", "--method", "guided",
               "--method", "gradcam")  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    slow = cli("explain", photos, "--out", tmp_path / "slow", "--method", "guided",
               "--method", "gradcam", env={"SALIENCY_PNG_ENCODER": "pillow"})  # fmt: skip
    assert slow.returncode == 0, slow.stderr
    pictures = sorted(p.name for p in (tmp_path / "fast").glob("*.png"))
    assert len(pictures) == 10 and pictures == sorted(
        p.name for p in (tmp_path / "slow").glob("*.png")
    )
    for name in pictures:
        a, b = (tmp_path / "fast" / name).read_bytes(), (tmp_path / "slow" / name).read_bytes()
        assert b"fdEC" in a[:200] and b"fdEC" not in b
        with Image.open(io.BytesIO(a)) as one, Image.open(io.BytesIO(b)) as other:
            assert np.array_equal(np.asarray(one), np.asarray(other)), name
        assert len(a) < 1.5 * len(b)  # about the same size
    again = cli("explain", photos, "--out", tmp_path / "fast", "--method", "guided",
                "--method", "gradcam", env={"SALIENCY_PNG_ENCODER": "pillow"})  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "0 maps written" in again.stderr and "5 already done" in again.stderr
