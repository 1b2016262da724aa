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


def make(name: str, work: Path, done: dict[tuple[str, ...], Path]) -> None:
    """Run the figure's command (once for figures that share it) and copy its file here."""
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
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), default=[])
    parser.add_argument("--list", action="store_true", help="name the figures and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(sorted(FIGURES)))
        return
    done: dict[tuple[str, ...], Path] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.only or FIGURES:
            make(name, Path(work), done)


if __name__ == "__main__":
    main()
