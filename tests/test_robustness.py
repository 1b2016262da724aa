"""Bad input, odd images, interruptions, output trouble and untrusted files (issue 5).

Every test makes its own bad files."""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from saliency import ImageError, load_image
from saliency_cli.app import app
from tests.untrusted import Payload

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
runner = CliRunner()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def photo(size=(80, 60)):
    return Image.open(SAMPLES / "chelsea.png").convert("RGB").resize(size)


def jpeg_bytes(size=(80, 60)):
    buffer = io.BytesIO()
    photo(size).save(buffer, "JPEG")
    return buffer.getvalue()


def png_header(width, height):
    """A tiny PNG that claims a huge size: a decompression bomb, a few dozen bytes."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_bad_files_each_named_good_ones_done(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    photo().save(folder / "good one.jpg")
    photo().save(folder / "café 猫.png")
    (folder / "a jpeg really.png").write_bytes(jpeg_bytes())  # valid image, wrong extension
    (folder / "jpeg_named.txt").write_bytes(jpeg_bytes())  # found by content in a folder
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("just some text\n" * 20)
    (folder / "truncated.jpg").write_bytes(jpeg_bytes((200, 150))[:600])
    png = io.BytesIO()
    photo((200, 150)).save(png, "PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[:900])
    (folder / "broken link.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "notes.md").write_text("skipped, not an image")
    out = tmp_path / "out"
    result = run("explain", folder, "--out", out)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    bad = {"zero.jpg", "text.jpg", "truncated.jpg", "truncated.png"}
    assert len(lines) == len(bad)
    for name in bad:
        assert any(name in line for line in lines), name
    manifest = rows(out)
    errors = {Path(r["image"]).name: r["error"] for r in manifest if r["status"] == "error"}
    assert set(errors) == bad and errors["zero.jpg"] == "empty file"
    assert "broken image" in errors["truncated.jpg"] and "broken image" in errors["truncated.png"]
    done = {Path(r["image"]).name for r in manifest if r["status"] == "ok"}
    assert done == {"good one.jpg", "café 猫.png", "a jpeg really.png", "jpeg_named.txt"}
    assert (out / "café 猫.guided.png").exists() and (out / "good one.guided.png").exists()
    assert "1 non-image file skipped" in result.output
    assert "1 skipped (not regular files" in result.output  # the broken link


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their permissions")
def test_unreadable_file_and_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    photo().save(folder / "ok.jpg")
    photo().save(folder / "secret.jpg")
    (folder / "secret.jpg").chmod(0)
    (folder / "locked").chmod(0)
    try:
        out = tmp_path / "out"
        result = run("explain", folder / "ok.jpg", folder / "secret.jpg", "--out", out)
        assert result.exit_code == 1 and "secret.jpg: permission denied" in result.output
    finally:
        (folder / "secret.jpg").chmod(0o644)
        (folder / "locked").chmod(0o755)


def test_image_bomb_is_refused_without_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))
    assert bomb.stat().st_size < 200
    start = time.monotonic()
    with pytest.raises(ImageError, match="refused: too many pixels"):
        load_image(bomb)
    assert time.monotonic() - start < 1
    out = tmp_path / "out"
    result = run("explain", bomb, "--out", out)
    assert result.exit_code == 1 and "too many pixels" in result.output


def test_large_legal_photo_holds_one_full_size_copy(tmp_path):
    """8000x6000: the reader decodes a reduced JPEG; one full-size copy only for the overlay."""
    big = tmp_path / "big.jpg"
    gradient = np.linspace(0, 255, 8000, dtype=np.uint8)
    array = np.stack([np.tile(gradient, (6000, 1))] * 3, axis=-1)
    Image.fromarray(array).save(big, quality=80)
    del array
    script = (
        "import sys\n"
        "from saliency_cli.app import main\n"
        "sys.argv = ['saliency', 'explain', sys.argv[1], '--out', sys.argv[2], '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('peak', hwm)\n"
        "sys.exit(code)\n"
    )
    small = tmp_path / "small.jpg"
    photo().save(small)

    def peak_mib(image):
        out = tmp_path / f"out_{image.stem}"
        done = subprocess.run(
            [sys.executable, "-c", script, str(image), str(out)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1]) / 1024, out

    baseline, _ = peak_mib(small)  # torch, the model, the threads
    peak, out = peak_mib(big)
    assert Image.open(out / "big.guided.png").size == (8000, 6000)
    copy = 8000 * 6000 * 4 / 2**20  # one full-size RGB image as Pillow holds it: 183 MiB
    # the photo (read once, for the overlay) and the picture being written; the reader decodes
    # the JPEG at a reduced scale, and rendering works in bands of 64 rows
    assert peak - baseline < 2 * copy + 120, (baseline, peak)


ODD = {
    "one_pixel.png": lambda: Image.new("RGB", (1, 1), (250, 10, 10)),
    "sliver.png": lambda: photo((2, 3000)),
    "gray.png": lambda: photo().convert("L"),
    "alpha.png": lambda: photo().convert("RGBA"),
    "palette.png": lambda: photo().convert("P"),
    "cmyk.jpg": lambda: photo().convert("CMYK"),
    "sixteen.png": lambda: Image.fromarray(np.asarray(photo().convert("L"), dtype=np.uint16) * 257),
}


def test_odd_images_are_processed_at_original_size(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    sizes = {}
    for name, make in ODD.items():
        image = make()
        image.save(folder / name)
        sizes[Path(name).stem] = image.size
    frames = [photo().convert("P"), photo().rotate(90).convert("P")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=40)
    sizes["anim"] = frames[0].size
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    photo((90, 60)).save(folder / "rotated.jpg", exif=exif)
    sizes["rotated"] = (60, 90)
    out = tmp_path / "out"
    result = run("explain", folder, "--out", out, "--method", "gradient")
    assert result.exit_code == 0, result.output
    for stem, size in sizes.items():
        assert Image.open(out / f"{stem}.gradient.png").size == size, stem


def slow_folder(tmp_path, count=60):
    folder = tmp_path / "many"
    folder.mkdir()
    base = photo((160, 120))
    for i in range(count):
        base.save(folder / f"img{i:03d}.png")
    return folder


def explain_command(folder, out):
    return [sys.executable, "-m", "saliency_cli", "explain", str(folder), "--out", str(out),
            "--batch-size", "2", "--method", "gradient", "--method", "deconvnet",
            "--method", "guided"]  # fmt: skip


def start(folder, out):
    return subprocess.Popen(
        explain_command(folder, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_fast_keeps_work_and_rerun_completes(tmp_path, sig):
    folder, out = slow_folder(tmp_path), tmp_path / "out"
    proc = start(folder, out)
    manifest = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if manifest.exists() and manifest.read_text().count("\n") >= 12:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never started writing")
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, "took too long to stop"
    assert proc.returncode == 128 + sig, stderr
    assert not list(out.rglob("*.part")), "half-written files left"
    first = [json.loads(line) for line in manifest.read_text().splitlines()]  # all complete
    assert 12 <= len(first) < 3 * 60  # stopped before the end
    for row in first:
        assert all((out / name).exists() for name in row["outputs"])
    rerun = subprocess.run(
        explain_command(folder, out),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    final = rows(out)
    done = [(r["image"], r["method"]) for r in final if r["status"] == "ok"]
    assert len(done) == len(set(done)) == 3 * 60  # every image and method exactly once


def test_unwritable_out_is_refused_before_work(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    photo().save(tmp_path / "x.jpg")
    result = run("explain", tmp_path / "x.jpg", "--out", tmp_path / "file" / "out")
    assert result.exit_code == 2 and "cannot write to --out" in result.output


def test_a_full_disk_stops_the_run_once_and_earlier_outputs_are_kept(tmp_path, monkeypatch):
    import saliency.files.outputs

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        photo().save(folder / f"p{i}.jpg")
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) > 2 and str(dst).endswith(".png"):  # pictures only, not the manifest
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(saliency.files.outputs.os, "replace", failing_replace)
    out = tmp_path / "out"
    # writers in this process (--workers 0), where the failing replace is patched in
    result = run("explain", folder, "--out", out, "--batch-size", "1", "--workers", "0")
    assert result.exit_code == 1
    # a full disk is the run's fault, not one image's: the run stops once, saying so (issue 23)
    assert result.output.count("No space left on device") == 1
    assert "the run stopped, and the pictures it finished are kept" in result.output
    manifest = rows(out)
    assert sorted(r["status"] for r in manifest) == ["ok", "ok"]
    assert len(list(out.glob("*.png"))) == 2 and not list(out.rglob("*.part"))


def test_a_strangers_file_at_an_output_path_is_never_replaced_without_overwrite(tmp_path):
    photo().save(tmp_path / "x.jpg")
    photo().save(tmp_path / "y.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.guided.png").write_bytes(b"precious")
    result = run("explain", tmp_path / "x.jpg", tmp_path / "y.jpg", "--out", out)
    assert result.exit_code == 1
    assert "x.guided.png exists and was not written by saliency" in result.output
    assert (out / "x.guided.png").read_bytes() == b"precious"
    assert {Path(r["image"]).name: r["status"] for r in rows(out)} == {
        "x.jpg": "error",
        "y.jpg": "ok",
    }
    assert run("explain", tmp_path / "x.jpg", "--out", out, "--overwrite").exit_code == 0
    assert (out / "x.guided.png").read_bytes().startswith(b"\x89PNG")
    assert [r["status"] for r in rows(out)] == ["ok"]  # --overwrite: this run's rows only


def test_untrusted_checkpoint_and_labels(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"payload": Payload(marker)}, evil)
    photo().save(tmp_path / "x.jpg")
    result = run("explain", tmp_path / "x.jpg", "--model", "resnet18", "--weights", evil)
    assert result.exit_code == 2 and "refused to load" in result.output
    assert not marker.exists()
    labels = tmp_path / "labels.txt"
    labels.write_bytes(evil.read_bytes())  # a pickle where labels belong: read as text, refused
    result = run("explain", tmp_path / "x.jpg", "--labels", labels)
    assert result.exit_code == 2 and "labels" in result.output
    assert not marker.exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    photo().save(tmp_path / "x.jpg")
    result = run("explain", tmp_path / "x.jpg", "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_loader_on_random_bytes(tmp_path, data):
    path = tmp_path / "random.jpg"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ImageError:
        return
    assert image.mode == "RGB" and image.size[0] > 0 and image.size[1] > 0


FORMATS = {
    "1": ["PNG", "BMP", "TIFF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "BMP", "GIF", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode_format=st.sampled_from([(m, f) for m, fs in FORMATS.items() for f in fs]),
    width=st.integers(1, 24),
    height=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
    truncate=st.one_of(st.none(), st.integers(0, 400)),
)
def test_loader_on_random_images_of_every_mode(
    tmp_path, mode_format, width, height, seed, truncate
):
    mode, fmt = mode_format
    rng = np.random.default_rng(seed)
    if mode == "F":
        image = Image.fromarray(rng.random((height, width), dtype=np.float32))
    elif mode == "I":
        image = Image.fromarray(rng.integers(0, 2**20, (height, width), dtype=np.int32))
    elif mode == "I;16":
        image = Image.fromarray(rng.integers(0, 2**16, (height, width), dtype=np.uint16))
    else:
        channels = len(Image.new(mode, (1, 1)).getbands())
        noise = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        image = (
            Image.frombytes(mode, (width, height), noise.tobytes())
            if mode != "1"
            else (Image.fromarray(noise[..., 0]).convert("1"))
        )
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    data = buffer.getvalue()
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(data if truncate is None else data[:truncate])
    try:
        loaded = load_image(path)
    except ImageError:
        assert truncate is not None, "a valid image was refused"
        return
    assert loaded.mode == "RGB"
    if truncate is None:
        assert loaded.size == (width, height)
