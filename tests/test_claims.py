"""What the README promises about pictures, tested as it is stated: byte-identical whatever
``--workers`` and from run to run; across ``--batch-size``, equal up to float rounding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .commands import ROOT, cli
from .outputs_check import check_nothing_lost

SAMPLES = ROOT / "sample_images"


@pytest.fixture(scope="module")
def same_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six photos of one size, so that batches hold several of them."""
    folder = tmp_path_factory.mktemp("same")
    for number, name in enumerate(("coffee.jpg", "astronaut.jpg", "rocket.jpg")):
        photo = Image.open(SAMPLES / name).convert("RGB").resize((200, 150))
        for turn in (0, 180):
            photo.rotate(turn).save(folder / f"p{number}_{turn}.jpg", quality=92)
    return folder


def explained(photos: Path, out: Path, *extra: object) -> dict[str, bytes]:
    done = cli("explain", photos, "--out", out, "--method", "guided", "--method", "gradcam",
               "--save-raw", *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}


@pytest.mark.slow
def test_pictures_are_byte_identical_whatever_the_workers_and_run_to_run(
    same_size: Path, tmp_path: Path
) -> None:
    threads = explained(same_size, tmp_path / "threads", "--workers", "0", "--batch-size", "4")
    processes = explained(same_size, tmp_path / "procs", "--workers", "2", "--batch-size", "4")
    again = explained(same_size, tmp_path / "again", "--workers", "2", "--batch-size", "4")
    assert len(threads) == 12 and threads == processes == again


@pytest.mark.slow
def test_across_batch_sizes_maps_agree_to_rounding_and_pictures_to_a_few_levels(
    same_size: Path, tmp_path: Path
) -> None:
    alone = explained(same_size, tmp_path / "b1", "--batch-size", "1")
    together = explained(same_size, tmp_path / "b6", "--batch-size", "6")
    assert alone.keys() == together.keys() and len(alone) == 12
    for name in alone:
        raw = np.load(tmp_path / "b1" / name.replace(".png", ".npy"))
        other = np.load(tmp_path / "b6" / name.replace(".png", ".npy"))
        peak = float(np.abs(raw).max())
        assert np.abs(raw - other).max() <= 1e-5 * peak, name  # as the README states
        a = np.asarray(Image.open(tmp_path / "b1" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "b6" / name), dtype=int)
        difference = np.abs(a - b)
        assert difference.max() <= 8 and (difference > 0).mean() < 0.001, name


def test_a_file_named_twice_is_done_once_and_no_recursive_stays_in_the_folder(tmp_path: Path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    (photos / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 40, 40)).save(photos / "cat.jpg")
    Image.new("RGB", (40, 30), (40, 200, 40)).save(photos / "sub" / "dog.jpg")
    twice = cli("explain", photos / "cat.jpg", photos / "cat.jpg", photos, "--out", out)
    assert twice.returncode == 0, twice.stderr
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).name for r in rows) == ["cat.jpg", "dog.jpg"]
    flat = cli("explain", photos, "--out", tmp_path / "flat", "--no-recursive")
    assert flat.returncode == 0, flat.stderr
    assert [Path(r["image"]).name for r in check_nothing_lost(tmp_path / "flat")] == ["cat.jpg"]


def test_jpg_pictures_are_a_fifth_of_the_png_size_or_less_on_the_sample_photos(tmp_path: Path):
    png = cli("explain", SAMPLES, "--out", tmp_path / "png")
    jpg = cli("explain", SAMPLES, "--out", tmp_path / "jpg", "--format", "jpg")
    assert png.returncode == jpg.returncode == 0, png.stderr + jpg.stderr
    for picture in (tmp_path / "png").glob("*.png"):
        lossy = tmp_path / "jpg" / picture.with_suffix(".jpg").name
        assert picture.stat().st_size >= 5 * lossy.stat().st_size, picture.name


def test_a_busy_folder_names_the_holder_process_host_start_and_command(tmp_path: Path):
    import socket

    from saliency.errors import OutputBusyError
    from saliency.files.lock import lock_output

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from saliency.files.lock import lock_output\n"
         f"with lock_output(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusyError) as busy, lock_output(out):
            pass
        message = str(busy.value)
        assert f"process {holder.pid} on {socket.gethostname()}, started 20" in message
        assert message.endswith(": -c); wait for it to finish, or write to another folder")
    finally:
        holder.kill()
        holder.wait()
