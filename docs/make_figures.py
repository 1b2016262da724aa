"""Make every figure of the documentation from the sample photos, with the commands the pages
name (so a figure is never drawn by hand, and a change to the renderer is one rerun away).

python docs/make_figures.py [--only NAME]... [--list]

The slow ones (Score-CAM, RISE, the LRP sanity check) take minutes each on a 2-core CPU; the
whole set about 20 minutes. ``report.png`` is made by ``docs/report_screenshot.py`` (Chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
LRP = ["lrp_epsilon_plus", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box",
       "lrp_epsilon_alpha2_beta1_flat"]  # fmt: skip
TWO = ["sample_images/chelsea.png", "sample_images/coffee.jpg"]


def _methods(*names: str) -> list[str]:
    return [part for name in names for part in ("--method", name)]


# figure -> (the command's arguments after `saliency`, the file it writes under --out)
FIGURES: dict[str, tuple[list[str], str]] = {
    "chelsea.guided.overlay.png": (
        ["explain", "sample_images/chelsea.png"], "chelsea.guided.png"),
    "coffee.guided.rgb.png": (
        ["explain", "sample_images/coffee.jpg", "--style", "rgb"], "coffee.guided.png"),
    "compare.rgb.png": (
        ["compare", "sample_images/chelsea.png", "sample_images/grace_hopper.jpg", "--grid",
         "--style", "rgb"], "compare.png"),
    "compare.more.png": (
        ["compare", *TWO, "--grid",
         *_methods("gradcam", "guided_gradcam", "integrated_gradients", "gradient_x_input")],
        "compare.png"),
    "compare.cams.png": (
        ["compare", *TWO, "--grid",
         *_methods("gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam",
                   "eigencam")],
        "compare.png"),
    "compare.perturbation.png": (
        ["compare", *TWO, "--grid", *_methods("scorecam", "occlusion", "rise"),
         "--set", "masks=1000"], "compare.png"),
    "chelsea.smooth.png": (
        ["compare", "sample_images/chelsea.png", *_methods("gradient", "integrated_gradients"),
         "--smooth", "16"], "chelsea.compare.png"),
    "compare.lrp.png": (
        ["compare", *TWO, "--grid", *_methods("guided", *LRP)], "compare.png"),
    "sanity.png": (["sanity", "sample_images"], "sanity.png"),
    "sanity.chelsea.png": (["sanity", "sample_images"], "strips/chelsea.png"),
    "sanity.lrp.png": (["sanity", "sample_images", *_methods("guided", *LRP)], "sanity.png"),
    "evaluation.png": (["evaluate", "sample_images", "--fit", "resize"], "evaluation.png"),
}  # fmt: skip


def similarity_figure(path: Path) -> None:
    """What makes the astronaut's photo like Grace Hopper's, and unlike it: Grad-CAM of the
    offline default as an embedding (its head removed; real ImageNet weights), with a
    SimilarityTarget on Grace Hopper's embedding and its difference, beside the photo."""
    import torch
    from PIL import Image

    from saliency import SimilarityTarget, explain, load_image, load_model

    loaded = load_model(embedding=True)
    photo = load_image(ROOT / "sample_images" / "astronaut.jpg")
    x, geometry = loaded.preprocess(photo, "resize")
    reference_photo = load_image(ROOT / "sample_images" / "grace_hopper.jpg")
    with torch.no_grad():
        reference = loaded.model(loaded.preprocess(reference_photo, "resize")[0][None])[0]
    pictures = [photo.convert("RGB")]
    for different in (False, True):
        result = explain(loaded, x[None], "gradcam", SimilarityTarget(reference, different))
        pictures.append(result.render(0, photo, geometry))
    gap = 8
    strip = Image.new("RGB", (sum(p.width for p in pictures) + gap * 2, photo.height), "white")
    for i, picture in enumerate(pictures):
        strip.paste(picture, (i * (photo.width + gap), 0))
    strip.thumbnail((1200, 400))
    strip.save(path)


# figures drawn from Python (the API's own examples), not by a command
SCRIPTED = {"beyond.similarity.png": similarity_figure}


def make(name: str, work: Path, done: dict[tuple[str, ...], Path]) -> None:
    """Run the figure's command (once for figures that share it) and copy its file here."""
    if name in SCRIPTED:
        SCRIPTED[name](DOCS / name)
        print(f"docs/{name}: {SCRIPTED[name].__name__} in docs/make_figures.py")
        return
    arguments, produced = FIGURES[name]
    key = tuple(arguments)
    if key not in done:
        out = work / f"run{len(done)}"
        command = [sys.executable, "-m", "saliency_cli", *arguments, "--out", str(out), "--quiet"]
        subprocess.run(command, check=True, cwd=ROOT)
        done[key] = out
    shutil.copyfile(done[key] / produced, DOCS / name)
    print(f"docs/{name}: saliency {' '.join(arguments)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = sorted({*FIGURES, *SCRIPTED})
    parser.add_argument("--only", action="append", choices=names, default=[])
    parser.add_argument("--list", action="store_true", help="name the figures and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(names))
        return
    done: dict[tuple[str, ...], Path] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.only or names:
            make(name, Path(work), done)


if __name__ == "__main__":
    main()
