"""Reruns, odd files, signals and concurrent runs (issue 13), with real processes and files.

After every run the output folder is checked for 'nothing lost' (tests/outputs_check.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from saliency import OutputBusyError
from saliency.files.lock import lock_output
from saliency_cli.app import app
from tests.outputs_check import check_nothing_lost

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
ROOT = Path(__file__).resolve().parent.parent


def small(name: str, size: tuple[int, int] = (72, 56)) -> Image.Image:
    return Image.open(SAMPLES / name).convert("RGB").resize(size)


def cli(*args: object, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The saliency command in a process of its own; a hang fails the test, never stalls it."""
    command = [sys.executable, "-m", "saliency_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def here(*args: object) -> subprocess.CompletedProcess[str]:
    """The saliency command in this process: faster, for tests that need no process of its own."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return subprocess.CompletedProcess(args, result.exit_code, "", result.output)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    small("chelsea.png").save(folder / "cat.png")
    small("coffee.jpg").save(folder / "coffee.jpg")
    small("astronaut.jpg").save(folder / "astronaut.jpg")
    return folder


def stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}


def by_image(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["image"]).name + ":" + str(r["method"]): r for r in rows}


def test_a_replaced_photo_is_redone_and_the_rest_kept(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = cli("explain", photos, "--out", out)
    assert first.returncode == 0, first.stderr
    before_rows, before = by_image(check_nothing_lost(out)), stamps(out)
    old_cat = (out / "cat.guided.png").read_bytes()
    small("rocket.jpg").save(photos / "cat.png")  # same name, another photo
    second = cli("explain", photos, "--out", out)
    assert second.returncode == 0, second.stderr
    assert "1 image done, 1 map written, 0 inputs failed, 2 already done" in second.stderr
    rows, after = by_image(check_nothing_lost(out)), stamps(out)
    assert len(rows) == 3
    assert (out / "cat.guided.png").read_bytes() != old_cat
    cat, old = rows["cat.png:guided"], before_rows["cat.png:guided"]
    assert cat["source"]["sha256"] != old["source"]["sha256"]
    assert cat["top5"] != old["top5"]  # the manifest describes the new photo
    assert after["coffee.guided.png"] == before["coffee.guided.png"]
    assert after["astronaut.guided.png"] == before["astronaut.guided.png"]


def test_changed_options_redo_exactly_what_they_change(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["explain", photos, "--out", out, "--method", "guided", "--method", "gradcam"]
    assert here(*args).returncode == 0
    check_nothing_lost(out)

    def rerun(*extra: str) -> set[str]:
        """The pictures this run rewrote."""
        before = stamps(out)
        result = here(*args, *extra)
        assert result.returncode == 0, result.stderr
        rows = check_nothing_lost(out)
        assert len(rows) == 6
        return {name for name, stamp in stamps(out).items() if before[name] != stamp}

    everything = {
        f"{n}.{m}.png" for n in ("cat", "coffee", "astronaut") for m in ("guided", "gradcam")
    }
    assert rerun() == set()
    assert rerun("--style", "heatmap") == everything
    refused = here(*args, "--style", "heatmap", "--steps", "8")  # neither method has steps
    assert refused.returncode == 2 and "--steps is used only by integrated_gradients" in (
        refused.stderr
    )
    assert rerun("--style", "heatmap") == set()
    gradcam = {name for name in everything if ".gradcam." in name}
    assert rerun("--style", "heatmap", "--layer", "blocks") == gradcam
    assert rerun("--style", "heatmap", "--layer", "blocks", "--fit", "crop") == everything
    assert rerun("--style", "heatmap", "--layer", "blocks", "--fit", "crop", "--overwrite") == (
        everything
    )


def test_same_content_with_a_new_time_is_kept(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("explain", photos, "--out", out).returncode == 0
    before = stamps(out)
    os.utime(photos / "cat.png", ns=(1_000_000_000, 1_000_000_000))  # touched, not changed
    result = cli("explain", photos, "--out", out)
    assert result.returncode == 0 and "3 already done" in result.stderr
    assert stamps(out) == before
    check_nothing_lost(out)


def test_a_photo_that_became_unreadable_loses_its_old_picture(photos: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert cli("explain", photos, "--out", out).returncode == 0
    (photos / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n not any more")
    result = cli("explain", photos, "--out", out)
    assert result.returncode == 1 and "cat.png" in result.stderr
    rows = by_image(check_nothing_lost(out))
    assert rows["cat.png:None"]["status"] == "error" and "cat.png:guided" not in rows
    assert not (out / "cat.guided.png").exists()
    small("chelsea.png").save(photos / "cat.png")
    assert cli("explain", photos, "--out", out).returncode == 0
    rows = by_image(check_nothing_lost(out))
    assert rows["cat.png:guided"]["status"] == "ok" and "cat.png:None" not in rows


def test_pictures_of_ours_without_rows_are_redone(photos: Path, tmp_path: Path) -> None:
    """A run stopped between a picture and its row leaves a picture the manifest lacks: it
    carries our marker, so the next run replaces it instead of refusing it as a stranger's."""
    out = tmp_path / "out"
    assert cli("explain", photos, "--out", out).returncode == 0
    (out / "results.jsonl").unlink()
    result = cli("explain", photos, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "3 images done, 3 maps written, 0 inputs failed" in result.stderr
    assert len(check_nothing_lost(out)) == 3


def make_socket(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    small("chelsea.png").save(folder / "good.png")
    small("coffee.jpg").save(tmp_path / "elsewhere.jpg")
    (folder / "link.jpg").symlink_to(tmp_path / "elsewhere.jpg")  # a link to a file: read
    os.mkfifo(folder / "pipe.jpg")
    server = make_socket(folder / "s.png")
    (folder / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "device.jpg").symlink_to("/dev/zero")  # would never end
    try:
        out = tmp_path / "out"
        result = cli("explain", folder, "--out", out)
        assert result.returncode == 0, result.stderr
        assert "4 skipped (not regular files" in result.stderr
        rows = check_nothing_lost(out)
        assert sorted(Path(r["image"]).name for r in rows) == ["good.png", "link.jpg"]
        named = [folder / n for n in ("pipe.jpg", "s.png", "dangling.jpg", "device.jpg")]
        result = cli("explain", *named, folder / "good.png", "--out", out)
        assert result.returncode == 1
        errors = {Path(r["image"]).name: r["error"] for r in check_nothing_lost(out)}
        assert errors["pipe.jpg"] == "not a regular file: a named pipe"
        assert "s.png" in errors and errors["s.png"]  # ENXIO on open, or 'a socket'
        assert errors["dangling.jpg"] == "broken link"
        assert errors["device.jpg"] == "not a regular file: a character device"
        assert errors["good.png"] is None
    finally:
        server.close()


def test_output_folders_are_never_inputs(photos: Path, tmp_path: Path) -> None:
    out = photos / "maps"
    assert here("explain", photos, "--out", out).returncode == 0
    second = here("explain", photos, "--out", out)
    assert second.returncode == 0 and "3 already done" in second.stderr
    assert f"output folders not read: {out}" in second.stderr
    assert not (out / "maps").exists() and len(check_nothing_lost(out)) == 3
    # another run's output folder inside the inputs, met by a folder walk and by a glob
    other = tmp_path / "other"
    for paths in ([photos], [f"{photos}/**/*.png"]):
        result = here("explain", *paths, "--out", other)
        assert result.returncode == 0, result.stderr
        assert f"output folders not read: {out}" in result.stderr
        assert not any("maps" in r["image"] for r in check_nothing_lost(other))


def stalled(stage: str, fifo: Path, *args: object) -> subprocess.Popen[str]:
    """The command with one stage stuck in a blocking read (see tests/stall.py), once stuck."""
    command = [sys.executable, "-m", "tests.stall", stage, str(fifo), *map(str, args)]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reached = Path(f"{fifo}.reached")
    deadline = time.monotonic() + 120
    while not reached.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never got stuck: {proc.communicate()[1]}")
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """Eight photos; the stall stage blocks on the fourth."""
    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("a", "b", "c", "stall", "x", "y", "z", "zz"):
        small("chelsea.png", (64, 48)).save(folder / f"{name}.png")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "sig"),
    [
        ("read", signal.SIGINT),
        ("read-threads", signal.SIGTERM),
        ("model", signal.SIGINT),
        ("model", signal.SIGTERM),
        ("write", signal.SIGTERM),
        ("write-threads", signal.SIGINT),
    ],
)  # every stage, each signal at several: the two signals take the same way out
def test_a_signal_ends_a_stuck_run(many: Path, tmp_path: Path, stage: str, sig: int) -> None:
    os.mkfifo(tmp_path / "fifo")
    out = tmp_path / "out"
    extra = ["--workers", "0"] if stage.endswith("-threads") else ["--workers", "2"]
    args = ["explain", many, "--out", out, "--batch-size", "1", *extra]
    proc = stalled(stage, tmp_path / "fifo", *args)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, "took too long to stop"
    assert proc.returncode == 128 + sig, stderr
    assert "interrupted" in stderr
    rows = check_nothing_lost(out)
    if stage == "model":  # stuck in its third pass: the two pictures written are recorded
        assert {Path(r["image"]).stem for r in rows if r["status"] == "ok"} == {"a", "b"}
    rerun = cli("explain", many, "--out", out, "--batch-size", "1")
    assert rerun.returncode == 0, rerun.stderr
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).stem for r in rows if r["status"] == "ok") == sorted(
        p.stem for p in many.iterdir()
    )


@pytest.mark.slow
def test_a_second_signal_ends_the_run_at_once(many: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    out = tmp_path / "out"
    proc = stalled("model", tmp_path / "fifo", "explain", many, "--out", out, "--batch-size", "1")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    again = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert time.monotonic() - again < 1.5
    assert proc.returncode == 130
    check_nothing_lost(out)


@pytest.mark.slow
def test_one_run_per_output_folder_and_a_dead_runs_lock_is_taken_over(
    many: Path, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")
    out = tmp_path / "out"
    first = stalled("model", tmp_path / "fifo", "explain", many, "--out", out, "--batch-size", "1")
    try:
        second = cli("explain", many, "--out", out)
        assert second.returncode == 2
        assert "is in use by another saliency run" in second.stderr
        assert f"process {first.pid} " in second.stderr and "stall.py" in second.stderr
    finally:
        first.kill()  # SIGKILL: no cleanup at all; its lock file stays behind
        first.communicate(timeout=30)
    assert json.loads((out / ".saliency.lock").read_text())["pid"] == first.pid
    third = cli("explain", many, "--out", out, "--batch-size", "1")
    assert third.returncode == 0, third.stderr
    assert json.loads((out / ".saliency.lock").read_text())["pid"] != first.pid
    rows = check_nothing_lost(out)
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)


def test_the_lock_is_per_thread_and_reentrant(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with lock_output(tmp_path):
                pass
        except OutputBusyError as exc:
            errors.append(exc)

    with lock_output(tmp_path), lock_output(tmp_path):  # the same thread may nest
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another run in this process" in str(errors[0])
    with lock_output(tmp_path):  # released: free again
        pass


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_at_once_and_the_first_finishes_whole(
    many: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command that writes into a folder holds it: while a run is stuck mid-way, explain,
    compare, sanity and evaluate into the same folder are usage errors naming it, and touch
    nothing; the first run, let go, finishes every picture."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    monkeypatch.setenv("SALIENCY_STALL_ONCE", "1")
    first = stalled("model", fifo, "explain", many, "--out", out, "--batch-size", "1")
    monkeypatch.delenv("SALIENCY_STALL_ONCE")
    try:
        one = many / "a.png"
        for command in (
            ("explain", many, "--out", out),
            ("compare", one, "--out", out, "--method", "gradient"),
            ("sanity", one, "--out", out, "--method", "gradient"),
            ("evaluate", one, "--out", out, "--method", "gradient", "--metric", "deletion"),
        ):
            second = cli(*command)
            assert second.returncode == 2, (command, second.stderr)
            assert f"{out} is in use by another saliency run" in second.stderr
        with open(fifo, "wb"):  # let the first run go on: the stuck read sees the end
            pass
        _, errors = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, errors
    rows = check_nothing_lost(out)
    assert sorted(Path(r["image"]).stem for r in rows) == sorted(p.stem for p in many.iterdir())
    assert not list(out.glob("*.compare.*")) and not (out / "sanity.json").exists()
