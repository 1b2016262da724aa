"""The saliency command, through Typer's runner and through a real subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from saliency.engine.registry import all_methods
from saliency.files.rows import BASE_KEYS
from saliency.tasks import get_kind
from saliency_cli.app import app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def small(name, size):
    image = Image.open(SAMPLES / name).convert("RGB")
    return image.resize(size)


@pytest.fixture
def photos(tmp_path):
    """A nested folder: the same file name in two subfolders, a non-image, odd sizes."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    small("coffee.jpg", (240, 160)).save(root / "a" / "pic.jpg")
    small("chelsea.png", (90, 60)).save(root / "b" / "pic.jpg")
    small("chelsea.png", (64, 96)).save(root / "cat.png")
    (root / "notes.txt").write_text("not an image")
    return root


def manifest(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


CLASSIFIER = get_kind("classification").provides
ALL_METHODS = tuple(m.name for m in all_methods() if m.applies_to(CLASSIFIER))  # all's


def test_explain_folder_mirrors_tree_all_methods(photos, tmp_path):
    out = tmp_path / "out"
    cheap = ["--steps", "4", "--set", "layer=blocks.0", "--set", "masks=4", "--set", "window=32",
             "--set", "stride=32"]  # fmt: skip
    result = run("explain", photos, "--out", out, "--method", "all", "--batch-size", "2", *cheap)
    assert result.exit_code == 0, result.output
    for rel, size in [("a/pic", (240, 160)), ("b/pic", (90, 60)), ("cat", (64, 96))]:
        for method in ALL_METHODS:
            picture = Image.open(out / f"{rel}.{method}.png")
            assert picture.size == size and picture.mode == "RGB"
    rows = manifest(out)
    assert len(rows) == 3 * len(ALL_METHODS) and all(row["status"] == "ok" for row in rows)
    extra = {m.name: ("layer",) for m in all_methods() if m.uses_layer}
    extra["integrated_gradients"] = ("baseline", "steps", "score_difference", "completeness_error")
    extra["occlusion"] = ("window", "stride", "baseline")
    extra["rise"] = ("masks", "cells", "p", "seed")
    for method in all_methods():
        if method.name.startswith("lrp_"):
            extra[method.name] = (*(s.name for s in method.depends_on), "relevance_sum", "logit")
    for row in rows:
        assert tuple(row) == BASE_KEYS + extra.get(row["method"], ()), row["method"]
    ig = [r for r in rows if r["method"] == "integrated_gradients"]
    assert all(r["baseline"] == "black" and r["steps"] == 4 for r in ig)
    assert all(r["layer"] == "blocks.0" for r in rows if "layer" in r)
    coffee = [r for r in rows if r["image"].endswith(os.path.join("a", "pic.jpg"))]
    assert {r["method"] for r in coffee} == set(ALL_METHODS)
    assert all(r["target_name"] == "espresso" and r["target"] == 967 for r in coffee)
    assert coffee[0]["top5"][0] == {
        "class": 967,
        "name": "espresso",
        "probability": coffee[0]["probability"],
    }
    assert len(coffee[0]["top5"]) == 5 and coffee[0]["model"] == "efficientnet_lite0"
    assert "1 non-image file skipped" in result.output


def test_topk_and_class_name_targets(photos, tmp_path):
    out = tmp_path / "out"
    result = run("explain", photos / "cat.png", "--out", out, "--target", "topk:2")
    assert result.exit_code == 0, result.output
    rows = manifest(out)
    assert [r["outputs"] for r in rows] == [["cat.guided.top1.png"], ["cat.guided.top2.png"]]
    assert [r["target"] for r in rows] == [t["class"] for t in rows[0]["top5"][:2]]
    result = run("explain", photos / "cat.png", "--out", out, "--target", "TIGER CAT")
    assert result.exit_code == 0, result.output
    row = manifest(out)[-1]
    assert row["target"] == 282 and row["target_name"] == "tiger cat"
    assert row["outputs"] == ["cat.guided.282.png"] and (out / "cat.guided.282.png").exists()


def test_save_raw(photos, tmp_path):
    out = tmp_path / "out"
    assert run("explain", photos / "cat.png", "--out", out, "--save-raw").exit_code == 0
    raw = np.load(out / "cat.guided.npy")
    geometry = json.loads((out / "cat.geometry.json").read_text())
    assert raw.dtype == np.float32 and raw.shape == (3, *geometry["input_size"][::-1])
    assert geometry["image_size"] == [64, 96]
    assert manifest(out)[0]["outputs"] == ["cat.guided.png", "cat.guided.npy", "cat.geometry.json"]


def test_failures_exit_1_and_rerun_completes_only_whats_missing(photos, tmp_path):
    out = tmp_path / "out"
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run("explain", photos, "--out", out)
    assert result.exit_code == 1
    assert "broken.jpg" in result.output
    rows = manifest(out)
    bad = [r for r in rows if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["image"].endswith("broken.jpg") and bad[0]["error"]
    first = (out / "cat.guided.png").stat().st_mtime_ns
    (photos / "broken.jpg").unlink()
    small("rocket.jpg", (50, 70)).save(photos / "new.jpg")
    result = run("explain", photos, "--out", out)
    assert result.exit_code == 0, result.output
    assert "3 already done" in result.output
    assert (out / "cat.guided.png").stat().st_mtime_ns == first
    ok = [r["image"] for r in manifest(out) if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 4  # every image done exactly once
    result = run("explain", photos, "--out", out, "--overwrite")
    assert result.exit_code == 0 and len(manifest(out)) == 4


def test_missing_paths_get_error_rows_also_with_overwrite(photos, tmp_path):
    out = tmp_path / "out"
    for extra in ([], ["--overwrite"]):
        result = run("explain", photos / "cat.png", tmp_path / "nope.jpg", "--out", out, *extra)
        assert result.exit_code == 1 and "nope.jpg: no such file or folder" in result.output
        rows = manifest(out)
        assert [r["status"] for r in rows if r["image"].endswith("nope.jpg")][-1] == "error"
        assert any(r["status"] == "ok" for r in rows if r["image"].endswith("cat.png"))


def test_same_inputs_give_identical_pngs(photos, tmp_path):
    for out in ("one", "two"):
        assert run("explain", photos, "--out", tmp_path / out, "--style", "rgb").exit_code == 0
    for png in (tmp_path / "one").rglob("*.png"):
        assert (
            png.read_bytes() == (tmp_path / "two" / png.relative_to(tmp_path / "one")).read_bytes()
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "lrp"], "'lrp' is not a method; did you mean lrp_epsilon"),
        (["--method", "gradcm"], "'gradcm' is not a method; did you mean gradcam"),
        (["--style", "x"], "'x' is not one of"),
        (["--fit", "x"], "'x' is not one of"),
        (["--cmap", "nope"], "unknown colormap"),
        (["--model", "resnet5"], "did you mean resnet50"),
        (["--device", "cuda:7"], "cuda"),
        (["--target", "tiger kat"], "did you mean 'tiger cat'"),
        (["--target", "1000"], r"valid classes are 0..999"),
        (["--batch-size", "0"], "at least 1"),
        (["--alpha", "1.5"], r"\[0, 1\]"),
        (["--clip-percentile", "101"], r"\(0, 100\]"),
    ],
)
def test_bad_options_exit_2_before_any_work(photos, tmp_path, args, message):
    import re

    out = tmp_path / "out"
    result = run("explain", photos, "--out", out, *args)
    assert result.exit_code == 2
    assert re.search(message, " ".join(result.output.split()))
    assert "Traceback" not in result.output
    assert not out.exists()


def test_compare_figures(photos, tmp_path):
    out = tmp_path / "cmp"
    result = run("compare", photos / "a", photos / "cat.png", "--out", out, "--steps", "4")
    assert result.exit_code == 0, result.output
    figure = Image.open(out / "cat.compare.png")
    cnn = get_kind("classification").provides  # the offline model: a CNN, no attention
    quick = [m for m in all_methods() if not m.slow and m.applies_to(cnn)]  # compare's default
    lines = -(-(len(quick) + 1) // 6)  # photo + a panel per quick method, six a line
    assert figure.size[0] > 6 * 250 and lines >= 2
    result = run(
        "compare", photos / "cat.png", "--out", out, "--method", "gradcam", "--smooth", "2"
    )
    assert result.exit_code == 0, result.output
    one = Image.open(out / "cat.compare.png").size
    assert one[0] < 3 * 500  # photo + one panel, one line
    assert figure.size[1] == pytest.approx(lines * one[1], rel=0.15)
    result = run("compare", photos, "--out", out, "--grid", "--format", "pdf", "--method", "guided")
    assert result.exit_code == 0, result.output
    assert (out / "compare.pdf").read_bytes().startswith(b"%PDF")


def test_list_commands():
    lines = run("models", "--offline").output.splitlines()
    assert lines[0].split()[0] == "efficientnet_lite0" and lines[0].endswith("offline")
    assert run("--version").output.startswith("saliency ")


def saliency_exe():
    exe = shutil.which("saliency", path=os.path.dirname(sys.executable))
    assert exe, "the saliency console script is not installed"
    return exe


def test_installed_command_in_a_subprocess(photos, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [saliency_exe(), "explain", str(photos), "--out", str(out), "--method", "deconvnet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "a" / "pic.deconvnet.png").exists() and (out / "b" / "pic.deconvnet.png").exists()
    assert "3 images done, 3 maps written, 0 inputs failed" in done.stderr
    # a typo in the only path: a usage error (exit 2, not 1) that says what was meant and
    # makes nothing (it made the output folder, an error row and a lock)
    bad = subprocess.run(
        [saliency_exe(), "explain", str(photos / "cta.png"), "--out", str(tmp_path / "typo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2, bad.stderr
    assert f"cta.png: no such file or folder (did you mean {photos / 'cat.png'}?)" in bad.stderr
    assert "nothing was done" in bad.stderr and not (tmp_path / "typo").exists()
    for command in ("compare", "sanity", "evaluate"):  # as every command that reads photos
        typo = subprocess.run(
            [saliency_exe(), command, str(photos / "cta.png"), str(tmp_path / "nope.jpg"),
             "--out", str(tmp_path / command)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert typo.returncode == 2 and "no path given exists" in typo.stderr, typo.stderr
        assert "nope.jpg: no such file or folder" in typo.stderr
        assert not (tmp_path / command).exists()
    usage = subprocess.run(
        [saliency_exe(), "explain", str(photos), "--method", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_help_is_instant_without_torch():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import saliency_cli.app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert not {"torch", "torchvision", "timm", "matplotlib"} & imported
    assert (
        subprocess.run([saliency_exe(), "--help"], capture_output=True, timeout=60).returncode == 0
    )


def test_smoothgrad_outputs_are_named_apart_and_recorded(photos, tmp_path):
    out = tmp_path / "out"
    args = ["explain", photos / "cat.png", "--out", out, "--method", "gradcam", "--smooth", "3"]
    result = run(*args, "--noise", "0.1", "--seed", "5", "--layer", "blocks")
    assert result.exit_code == 0, result.output
    (row,) = manifest(out)
    assert (
        row["outputs"] == ["cat.gradcam_smooth.png"] and (out / "cat.gradcam_smooth.png").exists()
    )
    assert (row["layer"], row["smooth"], row["noise"], row["seed"]) == ("blocks", 3, 0.1, 5)
    first = (out / "cat.gradcam_smooth.png").read_bytes()
    assert (
        run(*args, "--noise", "0.1", "--seed", "5", "--layer", "blocks", "--overwrite").exit_code
        == 0
    )
    assert (out / "cat.gradcam_smooth.png").read_bytes() == first  # seeded: byte-identical


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--method", "gradcam", "--layer", "blockz"],
            "'blockz' is not a submodule; did you mean blocks",
        ),
        (["--method", "gradcam", "--layer", "classifier"], "not a feature map"),
        (["--method", "guided", "--layer", "bn2"], "--layer is used only by gradcam"),
        (["--method", "guided", "--smooth", "2", "--noise", "-1"], "noise must be"),
        (["--method", "integrated_gradients", "--steps", "0"], "--steps"),
        (["--method", "integrated_gradients", "--baseline", "white"], "--baseline"),
    ],
)
def test_bad_method_options_are_usage_errors(photos, tmp_path, args, message):
    result = run("explain", photos / "cat.png", "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_methods_lists_every_method_with_its_cost():
    result = run("methods")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name in ALL_METHODS:
        at = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
        assert "cost:" in lines[at + 1]
    assert "--smooth N" in result.output and "batch-size" in result.output


def test_sanity_command_writes_csv_figures_and_prints_the_verdicts(photos, tmp_path):
    out = tmp_path / "sanity"
    args = ["sanity", photos, "--out", out, "--method", "gradient", "--method", "guided"]
    result = run(*args, "--fit", "crop", "--seed", "1")
    assert result.exit_code == 0, result.output
    text = (out / "sanity.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "image,method,step,layer,metric,value"
    cells = [line.split(",") for line in lines[1:]]
    assert {c[1] for c in cells} == {"gradient", "guided"}
    assert {c[3] for c in cells if c[2] == "1"} == {"classifier"}  # logits first
    assert max(int(c[2]) for c in cells) == 12  # the offline default has 12 stages
    assert len(cells) == 3 * 2 * 13 * 4  # images x methods x (baseline + steps) x metrics
    assert Image.open(out / "sanity.png").size[0] > 800
    for rel in ("a/pic", "b/pic", "cat"):
        assert (out / "strips" / f"{rel}.png").exists()
    flat = " ".join(result.output.split())
    assert "passes (< 0.3)" in flat and "gradient" in flat and "step 12 ends with conv_stem" in flat
    rerun = run(*args, "--fit", "crop", "--seed", "1", "--out", tmp_path / "again")
    assert rerun.exit_code == 0
    assert (tmp_path / "again" / "sanity.csv").read_text() == text  # deterministic under --seed


def test_sanity_bad_options(photos, tmp_path):
    out = tmp_path / "sanity"
    result = run("sanity", photos, "--out", out, "--threshold", "2")
    assert result.exit_code == 2 and "--threshold" in result.output
    result = run("sanity", photos, "--out", out, "--granularity", "block")
    assert result.exit_code == 2
    result = run("sanity", photos, "--out", out, "--method", "gradcam", "--layer", "nope")
    assert result.exit_code == 2 and "not a submodule" in result.output


@pytest.mark.parametrize("command", ["explain", "compare", "sanity"])
def test_native_fit_on_a_fixed_size_model_is_a_usage_error(photos, tmp_path, monkeypatch, command):
    import dataclasses

    import saliency_cli.common as cli
    from saliency import load_model

    loaded = load_model("efficientnet_lite0", weights="random")
    fixed = dataclasses.replace(
        loaded, preprocessing=dataclasses.replace(loaded.preprocessing, fixed_input_size=True)
    )
    monkeypatch.setattr(cli, "load", lambda *args, **kwargs: fixed)
    result = run(command, photos / "cat.png", "--out", tmp_path / "out", "--fit", "native")
    assert result.exit_code == 2
    assert "needs a fixed input size: use --fit resize or --fit crop" in result.output
    assert not (tmp_path / "out").exists()
