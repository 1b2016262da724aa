"""Head to head with what users run today, on the same photos, model and device.

* ours: ``saliency explain`` (in process, as ``run_job``) writing PNG overlays, guided and
  gradcam, batch ``--batch``;
* pytorch-grad-cam's own recipe, one photo at a time: ``cv2.imread``, ``preprocess_image``,
  ``GuidedBackpropReLUModel`` (or ``GradCAM``), ``show_cam_on_image`` on the photo,
  ``cv2.imwrite`` PNG;
* a Captum loop, one photo at a time: Pillow decode, the model's transform,
  ``GuidedBackprop.attribute``, ``visualize_image_attr`` (blended heat map), saved with
  matplotlib's ``savefig``.

Every rate is a marginal images/s between ``--small`` and ``--count`` photos (1024x768 JPEGs),
so start-up costs cancel out; the whole comparison repeats ``--repeat`` times and prints each
ratio's spread. The peers' guided maps miss EfficientNet-Lite0's ReLU6 units (they swap only
``nn.ReLU`` modules), so their guided pictures are not Guided Backprop there: the benchmark
measures their speed only.

    python benchmarks/head_to_head.py [--device cuda] [--count 48 --small 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import marginal, pipeline  # noqa: E402
from photos import count_folders, make_photos  # noqa: E402

from saliency import load_model  # noqa: E402
from saliency.engine.options import MethodOptions  # noqa: E402
from saliency.pipeline.drawing import Encoding  # noqa: E402
from saliency.pipeline.job import default_writers  # noqa: E402
from saliency.pipeline.options import JobOptions  # noqa: E402


def grad_cam_recipe(loaded, photos: list[Path], out: Path, method: str) -> float:
    """Seconds for pytorch-grad-cam's README recipe over ``photos``, one at a time."""
    import cv2
    from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.image import deprocess_image, preprocess_image, show_cam_on_image

    size = loaded.input_size
    mean, std = loaded.normalization
    model = loaded.model
    if method == "guided":
        explainer = GuidedBackpropReLUModel(model, device=loaded.device)
    else:
        explainer = GradCAM(model=model, target_layers=[model.bn2])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    for path in photos:
        rgb = np.float32(cv2.imread(str(path), 1)[:, :, ::-1]) / 255
        small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
        x = preprocess_image(small, mean=list(mean), std=list(std)).to(loaded.device)
        if method == "guided":
            gb = deprocess_image(explainer(x, target_category=None))
            picture = cv2.resize(gb, (rgb.shape[1], rgb.shape[0]))
        else:
            cam = explainer(input_tensor=x, targets=None)[0]
            cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]))
            picture = show_cam_on_image(rgb, cam, use_rgb=True)[:, :, ::-1]
        cv2.imwrite(str(out / f"{path.stem}.{method}.png"), picture)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def captum_loop(loaded, photos: list[Path], out: Path) -> float:
    """Seconds for a Captum loop over ``photos``: GuidedBackprop and visualize_image_attr."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from captum.attr import GuidedBackprop
    from captum.attr import visualization as viz
    from PIL import Image

    explainer = GuidedBackprop(loaded.model)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    for path in photos:
        photo = Image.open(path).convert("RGB")
        x, _ = loaded.preprocess(photo, "resize")
        x = x[None].to(loaded.device).requires_grad_(True)
        target = int(loaded.model(x).argmax(1))
        attribution = explainer.attribute(x, target=target)
        shown = np.asarray(photo.resize(x.shape[-1:-3:-1]), dtype=np.float32) / 255
        figure, _ = viz.visualize_image_attr(
            attribution[0].permute(1, 2, 0).detach().cpu().numpy(), shown,
            method="blended_heat_map", sign="absolute_value", use_pyplot=False,
        )  # fmt: skip
        figure.savefig(out / f"{path.stem}.guided.png")
        plt.close(figure)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--small", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-h2h")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    loaded = load_model(device=args.device)
    where = (
        torch.cuda.get_device_name()
        if loaded.device.type == "cuda"
        else f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    )
    print(f"{loaded.name}, 1024x768 JPEGs, PNG output, batch {args.batch} (ours), {where}")
    photos = make_photos(args.work / "photos", args.count, (1024, 768))
    folders = count_folders(args.work, photos, (args.small, args.count))
    out, writers = args.work / "out", default_writers(loaded.device)

    def ours(method: str):
        options = JobOptions(
            methods=(method,), fit="resize", encoding=Encoding("png"),
            method_options=MethodOptions(batch_size=args.batch),
        )  # fmt: skip
        return lambda n: pipeline(loaded, folders[n], out, options, writers)

    runs = {
        "ours guided": ours("guided"),
        "pytorch-grad-cam guided": lambda n: grad_cam_recipe(loaded, photos[:n], out, "guided"),
        "captum guided": lambda n: captum_loop(loaded, photos[:n], out),
        "ours gradcam": ours("gradcam"),
        "pytorch-grad-cam gradcam": lambda n: grad_cam_recipe(loaded, photos[:n], out, "gradcam"),
    }
    for run in runs.values():  # warm-up: page cache, allocator, imports
        run(args.small)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            rates[name].append(marginal(run, args.small, args.count))
    print(f"marginal images/s between {args.small} and {args.count} photos, {args.repeat} runs:")
    for name, found in rates.items():
        print(f"  {name:26s} " + "  ".join(f"{r:6.2f}" for r in found))
    print("ours ÷ theirs, per run (median, min to max):")
    for ours_name, theirs_name in (
        ("ours guided", "pytorch-grad-cam guided"),
        ("ours guided", "captum guided"),
        ("ours gradcam", "pytorch-grad-cam gradcam"),
    ):
        ratios = [a / b for a, b in zip(rates[ours_name], rates[theirs_name], strict=True)]
        print(
            f"  {ours_name} ÷ {theirs_name}: {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f} to {max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
