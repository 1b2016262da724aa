"""A fault of one input stays with that input; only a fault of the run stops it, and says which.

Real files, real processes and a real full disk (a small tmpfs); after every run nothing is lost:
every ok row's outputs exist and decode, no partial file, the manifest parses line by line, one
row per picture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from .commands import cli
from .outputs_check import check_nothing_lost

LONG = "x" * 246 + ".jpg"  # 250 bytes: a valid name, but name.guided.png is not


def photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_a_name_too_long_for_its_outputs_is_shortened_and_the_others_go_on(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photo(photos / LONG, (200, 30, 30))
    photo(photos / "cat.jpg", (30, 200, 30))
    done = cli("explain", photos, "--out", out, "--save-raw")
    assert done.returncode == 0, done.stderr
    assert "2 images done, 2 maps written" in done.stderr
    rows = {Path(r["image"]).name: r for r in check_nothing_lost(out)}
    assert set(rows) == {LONG, "cat.jpg"}
    picture = rows[LONG]["outputs"][0]
    assert picture.startswith("x" * 160) and picture.endswith(".guided.png")
    assert len(picture.encode()) < 255 and "~" in picture
    again = cli("explain", photos, "--out", out, "--save-raw")
    assert again.returncode == 0 and "2 already done" in again.stderr, again.stderr


def test_inputs_whose_names_meet_get_outputs_of_their_own(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    names = ["cat.jpg", "cat.png", "cat.png.jpg", "Dog.jpg", "dog.jpg"]
    for number, name in enumerate(names):
        photo(photos / name, (40 * number, 90, 200 - 30 * number))
    done = cli("explain", photos, "--out", out)
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).name for r in rows) == sorted(names)
    pictures = [r["outputs"][0] for r in rows]
    assert len({p.casefold() for p in pictures}) == 5  # distinct even where case is ignored
    assert len(list(out.glob("*.png"))) == 5


def test_a_write_refused_for_one_input_fails_that_input_alone(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photo(photos / "sub" / "blocked.jpg", (10, 10, 200))
    photo(photos / "open.jpg", (200, 200, 10))
    photo(photos / "dir.jpg", (10, 200, 200))
    out.mkdir()
    (out / "sub").write_text("a file where the mirrored folder would go")
    (out / "dir.guided.png").mkdir()  # a folder where a picture would go
    done = cli("explain", photos, "--out", out)
    assert done.returncode == 1, done.stderr
    rows = {Path(r["image"]).name: r for r in check_nothing_lost(out)}
    assert rows["open.jpg"]["status"] == "ok"
    blocked = rows["blocked.jpg"]
    assert blocked["status"] == "error" and blocked["error"].startswith("cannot write output: ")
    assert blocked["error"].endswith(str(out / "sub"))  # says where
    assert rows["dir.jpg"]["status"] == "error"
    assert "1 image done, 1 map written, 2 inputs failed" in done.stderr


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 700 KiB file system: room for a picture or two, not for the whole run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_with_the_reason_and_a_rerun_completes(
    tmp_path: Path, small_disk: Path
):
    photos, out = tmp_path / "photos", small_disk / "out"
    for number in range(6):
        photo(photos / f"p{number}.jpg", (30 * number, 120, 90), size=(320, 240))
    full = cli("explain", photos, "--out", out, "--save-raw", "--batch-size", "2")
    assert full.returncode == 1, full.stderr
    assert f"cannot write to {out}: No space left on device; the run stopped" in full.stderr
    assert full.stderr.count("error:") == 1  # the run's fault, not an error per image
    rows = check_nothing_lost(out)
    assert all(r["status"] == "ok" for r in rows) and len(rows) < 6
    grown = subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)])
    assert grown.returncode == 0
    rerun = cli("explain", photos, "--out", out, "--save-raw", "--batch-size", "2")
    assert rerun.returncode == 0, rerun.stderr
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).name for r in rows) == [f"p{n}.jpg" for n in range(6)]


class _FailsOnDark(torch.nn.Module):
    """The offline model, failing on any batch that holds a black photo: the fault of one
    input, as a model with input checks of its own would raise."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.flatten(1).amax(dim=1) < -0.9).any()):
            raise ValueError("a black photo")
        return self.model(x)


def test_the_model_failing_on_one_input_fails_that_input_not_its_batch(tmp_path: Path):
    from saliency import load_model
    from saliency.engine.options import MethodOptions
    from saliency.files.inputs import collect_inputs
    from saliency.pipeline.job import run_job
    from saliency.pipeline.options import JobOptions

    loaded = load_model()
    loaded = replace(loaded, model=_FailsOnDark(loaded.model).eval())
    photos, out = tmp_path / "photos", tmp_path / "out"
    for number, colour in enumerate([(200, 40, 40), (0, 0, 0), (40, 200, 40), (40, 40, 200)]):
        photo(photos / f"p{number}.png", colour)
    options = JobOptions(method_options=MethodOptions(batch_size=4))
    outcomes: list = []
    run_job(loaded, collect_inputs([str(photos)]).files, out, options, outcomes.append)
    failed = {o.input.path.name: o.error for o in outcomes if o.error}
    assert failed == {"p1.png": "model failed: ValueError: a black photo"}
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).name for r in rows if r["status"] == "ok") == [
        "p0.png",
        "p2.png",
        "p3.png",
    ]


def test_a_file_name_that_is_not_utf8_is_explained_recorded_resumed_and_reported(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    odd = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: a name UTF-8 cannot decode
    photo(photos / odd, (120, 60, 30))
    photo(photos / "plain.jpg", (30, 60, 120))
    done = cli("explain", photos, "--out", out, "--report")
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)  # the manifest parses: the name is kept as \u escapes
    assert sorted(Path(r["image"]).name for r in rows) == sorted([odd, "plain.jpg"])
    assert (out / os.fsdecode(b"caf\xe9.guided.png")).is_file()
    assert "caf%E9.guided.png" in (out / "report.html").read_text(errors="replace")
    again = cli("explain", photos, "--out", out)
    assert again.returncode == 0 and "2 already done" in again.stderr, again.stderr


def test_sanity_evaluate_and_compare_keep_one_inputs_fault_with_it(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photo(photos / "good.jpg", (200, 120, 40))
    (photos / "text.jpg").write_text("not a photo")
    good = (photos / "good.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(good[: len(good) // 3])  # a JPEG cut short
    reasons = {"text.jpg": "not an image Pillow can read", "cut.jpg": "cut.jpg: "}
    runs = {
        "compare": ("--method", "gradient"),
        "sanity": ("--method", "gradient", "--granularity", "stage"),
        "evaluate": ("--method", "gradient", "--metric", "deletion", "--curve-steps", "4"),
    }
    for command, settings in runs.items():
        done = cli(command, photos, "--out", out / command, *settings)
        assert done.returncode == 1, (command, done.stderr)  # some failed
        assert "Traceback" not in done.stderr
        for name, reason in reasons.items():
            assert f"error: {photos.name}/{name}" in done.stderr or name in done.stderr, command
            assert reason in done.stderr, (command, name)
        assert "2 failed" in done.stderr, (command, done.stderr)
    assert (out / "compare" / "good.compare.png").is_file()
    assert json.loads((out / "sanity" / "sanity.json").read_text())["verdicts"]
    assert json.loads((out / "evaluate" / "evaluation.json").read_text())["images"] == 1


def test_names_that_differ_only_in_unicode_normalization_get_pictures_of_their_own(
    tmp_path: Path,
):
    photos, out = tmp_path / "photos", tmp_path / "out"
    composed, decomposed = (unicodedata.normalize(form, "café.jpg") for form in ("NFC", "NFD"))
    photo(photos / composed, (200, 40, 40))
    photo(photos / decomposed, (40, 40, 200))
    if len(list(photos.iterdir())) < 2:
        pytest.skip("this file system folds Unicode normalization: one file")
    done = cli("explain", photos, "--out", out, "--method", "gradient")
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)  # the manifest parses line by line
    assert sorted(Path(r["image"]).name for r in rows) == sorted([composed, decomposed])
    pictures = {r["outputs"][0] for r in rows}
    assert len(pictures) == 2 and all((out / p).is_file() for p in pictures)
    red, blue = (np.asarray(Image.open(out / p).convert("RGB")).mean((0, 1)) for p in sorted(
        pictures, key=lambda p: unicodedata.is_normalized("NFD", p)))  # fmt: skip
    assert red[0] > red[2] and blue[2] > blue[0]  # each drawn over its own photo
    again = cli("explain", photos, "--out", out, "--method", "gradient")
    assert again.returncode == 0 and "2 already done" in again.stderr, again.stderr


def test_multi_frame_files_are_drawn_from_their_first_frame(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    first, second = Image.new("RGB", (48, 40), (200, 30, 30)), Image.new("RGB", (30, 20), "blue")
    first.save(photos / "pages.tif", save_all=True, append_images=[second])
    first.convert("P").save(photos / "anim.gif", save_all=True, append_images=[second.convert("P")])
    done = cli("explain", photos, "--out", out, "--method", "gradient", "--style", "heatmap")
    assert done.returncode == 0, done.stderr
    for name in ("pages", "anim"):
        assert Image.open(out / f"{name}.gradient.png").size == (48, 40), name


def test_a_huge_file_that_is_not_an_image_fails_fast_without_being_read_whole(tmp_path: Path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:  # sparse: 4 GiB on paper, nothing on disk
        handle.truncate(4 << 30)
    probe = (
        "import resource, sys\n"
        "from saliency.errors import ImageError\n"
        "from saliency.files.sources import read_regular\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    read_regular(sys.argv[1])\nexcept ImageError as exc:\n    print(exc.reason)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(huge)], capture_output=True, text=True, timeout=120
    )
    reason, grown_mib = done.stdout.splitlines()
    assert reason == "not an image Pillow can read", done.stderr
    assert int(grown_mib) < 64  # the 4 GiB were never read into memory
    from saliency.files.sources import SNIFF_ABOVE, read_regular

    noise = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "large.png")  # a large real image still reads
    assert (tmp_path / "large.png").stat().st_size > SNIFF_ABOVE
    assert len(read_regular(tmp_path / "large.png")[0]) == (tmp_path / "large.png").stat().st_size
