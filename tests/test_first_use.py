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


COMMANDS = ("explain", "compare", "sanity", "evaluate", "report", "merge", "models", "methods")


def test_help_fits_80_columns_in_panels_with_the_methods_listed_once() -> None:
    """Every command's help at 80 columns: no line wider, options grouped in panels, no type
    placeholders (``<bool>``, ``<str>``), the method names not spelled out in a metavar (they
    wrapped over 11 lines); ``saliency --help`` says what the tool explains today."""
    from saliency.engine.registry import method_names

    wide = {"COLUMNS": "80"}
    top = cli("--help", env=wide)
    assert top.returncode == 0
    assert "CNN classifiers" not in top.stdout
    for word in ("segmentation", "detectors", "embeddings", "saliency methods", *COMMANDS):
        assert word in top.stdout, word
    for command in COMMANDS:
        shown = cli(command, "--help", env=wide)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, command
        assert "<bool>" not in shown.stdout and "<str>" not in shown.stdout, command
        assert "Value error" not in shown.stdout
    explain = cli("explain", "--help", env=wide).stdout
    panels = [line for line in explain.splitlines() if line.endswith(":") and " " not in line[:1]]
    for panel in ("Input and output:", "Model:", "Methods:", "Detection:", "Pictures:",
                  "Performance:", "Runs:"):  # fmt: skip
        assert panel in panels, panels
    assert "--method METHOD" in explain and "saliency methods" in explain
    assert sum(name in explain for name in method_names() if "_" in name) <= 1  # in prose only
    assert "--weights PATH|random" in explain and "--seed" in explain


@pytest.mark.parametrize(
    "args, said",
    [
        (("--method", "gradcm"), "'gradcm' is not a method; did you mean gradcam"),
        (("--method", "lrp"), "did you mean lrp_epsilon_alpha2_beta1_flat or"),
        (("--fit", "x"), "'x' is not one of 'native', 'crop', 'resize'"),
        (("--target", "cat"), "did you mean 'tiger cat' (282), 'Persian cat' (283)"),
        (("--set", "steps=8", "--method", "guided"),
         "--set steps is used only by integrated_gradients"),
        (("--steps", "8", "--method", "guided"), "--steps is used only by integrated_gradients"),
    ],
)  # fmt: skip
def test_mistakes_say_what_was_meant(tmp_path: Path, args: tuple, said: str) -> None:
    """A misspelled method or class gets a "did you mean" (``cat``: the cats first, not
    'crate'); no validator's "Value error," prefix; ``--set steps`` answered as typed (it was
    answered about --steps). Exit 2, nothing made."""
    done = cli("explain", SAMPLES / "chelsea.png", "--out", tmp_path / "out", *args)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert said in message, message
    assert "Value error" not in message and "Traceback" not in message
    assert not (tmp_path / "out").exists()


def test_evaluate_steps_mean_what_they_mean_everywhere(tmp_path: Path) -> None:
    """``--steps`` is Integrated Gradients' points in every command, evaluate's too; the
    deletion and insertion curves' steps are ``--curve-steps``."""
    photo = SAMPLES / "chelsea.png"
    refused = cli("evaluate", photo, "--out", tmp_path / "a", "--method", "gradient",
                  "--steps", "4")  # fmt: skip
    assert refused.returncode == 2
    assert "--steps is used only by integrated_gradients" in refused.stderr
    done = cli("evaluate", photo, "--out", tmp_path / "b", "--method", "integrated_gradients",
               "--steps", "4", "--curve-steps", "3", "--metric", "deletion",
               "--fit", "resize")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # its cost said first: (1 map + 2 baselines) x the 2 fractions between the ends, and the
    # ends (the photo, the substrate) once for all; IG's own passes are not counted as perturbed
    # copies (their cost is the maps')
    said = " ".join(done.stderr.split())
    assert said.startswith("evaluate: 1 photo, 1 method and 2 baselines: 8 forward passes, about")
    curves = (tmp_path / "b" / "curves.csv").read_text().splitlines()
    ours = [line for line in curves if ",integrated_gradients,deletion," in line]
    assert len(ours) == 4  # the fractions 0, 1/3, 2/3, 1


def test_tab_completion_completes_commands_methods_and_choices() -> None:
    """Completion is on (``saliency --install-completion``); what bash gets asked for."""
    import os
    import subprocess

    from tests.test_cli import saliency_exe

    def complete(*words: str) -> list[str]:
        env = {**os.environ, "_SALIENCY_COMPLETE": "complete_bash",
               "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}  # fmt: skip
        done = subprocess.run([saliency_exe()], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        return done.stdout.split()

    assert "--install-completion" in cli("--help").stdout

    assert complete("saliency", "exp") == ["explain"]
    assert complete("saliency", "explain", "--method", "gradcam_") == ["gradcam_plus_plus"]
    assert complete("saliency", "explain", "--fit", "") == ["native", "crop", "resize"]


def test_offline_weights_are_refused_in_the_commands_terms(tmp_path: Path) -> None:
    """No network and no cached weights: the ways out as the command's options, not as Python
    keywords ("weights='random' for a random one (tests)")."""
    offline = {"SALIENCY_OFFLINE": "1"}
    for model in ("resnet18", "fasterrcnn_mobilenet_v3_large_320_fpn"):
        done = cli("explain", SAMPLES / "chelsea.png", "--out", tmp_path / model, "--model",
                   model, env=offline)  # fmt: skip
        assert done.returncode == 2, done.stderr
        said = " ".join(done.stderr.split())
        for way in ("--model efficientnet_lite0", "--weights PATH", "--weights random"):
            assert way in said, said
        assert "weights=" not in said and "(tests)" not in said
        assert not (tmp_path / model).exists()


def test_random_weights_are_seeded_so_a_rerun_keeps_its_pictures(tmp_path: Path) -> None:
    """``--weights random`` draws from ``--seed``: the same seed is the same model (a rerun
    does nothing), another seed another model (the pictures are redone), and the seed is in the
    model's identity."""
    out = tmp_path / "out"
    args = ("explain", SAMPLES / "chelsea.png", "--out", out, "--model", "resnet18",
            "--weights", "random", "--method", "gradient", "--fit", "resize")  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    (made,) = rows(out)
    again = cli(*args, "--seed", "0")
    assert again.returncode == 0 and "1 already done" in again.stderr, again.stderr
    other = cli(*args, "--seed", "1")
    assert other.returncode == 0 and "1 image done" in other.stderr, other.stderr
    (redone,) = [row for row in rows(out) if row["status"] == "ok"][-1:]
    assert redone["fingerprint"] != made["fingerprint"]


def test_progress_is_plain_lines_when_the_output_is_not_a_terminal(tmp_path: Path) -> None:
    """Output to a file or a pipe (here: captured) gets progress lines every few seconds (here
    0.2, by ``SALIENCY_PROGRESS``): done/total, rate, time left (a 10-minute run said
    nothing before its end)."""
    import re

    photos = [SAMPLES / n for n in ("chelsea.png", "coffee.jpg", "rocket.jpg", "astronaut.jpg")]
    done = cli("explain", *photos, "--out", tmp_path / "out", "--method", "integrated_gradients",
               "--batch-size", "1", env={"SALIENCY_PROGRESS": "0.2"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(re.fullmatch(r"explaining: 0/4 \(0%\)", line) for line in lines), lines
    assert any(re.fullmatch(r"passes: \d+/32 \(\d+%\).*", line) for line in lines), lines
    rated = r"explaining: [123]/4 \(\d+%\), [\d.]+ img/s, about \d+ s left"
    assert any(re.fullmatch(rated, line) for line in lines), lines
    assert lines[-1].startswith("4 images done")


def test_compare_wraps_many_panels_into_lines(tmp_path: Path) -> None:
    """Past six panels a figure wraps onto more lines (``--method all`` made one line 8160
    pixels wide); ``--columns 0`` keeps one line. Its progress shows as explain's does."""
    methods = [arg for m in ("gradient", "deconvnet", "guided", "gradcam", "gradient_x_input",
                             "eigencam", "hirescam") for arg in ("--method", m)]  # fmt: skip
    sizes = {}
    for columns in ("6", "0"):
        out = tmp_path / columns
        done = cli("compare", SAMPLES / "chelsea.png", "--out", out, *methods, "--columns",
                   columns, "--fit", "resize", env={"SALIENCY_PROGRESS": "0.2"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "comparing: 0/1 (0%)" in done.stderr.splitlines()  # it showed no progress
        sizes[columns] = Image.open(out / "chelsea.compare.png").size
    (wrapped_w, wrapped_h), (line_w, line_h) = sizes["6"], sizes["0"]
    assert wrapped_w == pytest.approx(line_w * 6 / 8, rel=0.05)  # 8 panels: 6, then 2
    assert wrapped_h == pytest.approx(line_h * 2, rel=0.1)
