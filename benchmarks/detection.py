"""A detector, head to head with pytorch-grad-cam's detection tutorial, on the same photos and
model (a seeded Faster R-CNN, MobileNetV3 at 320, its statistics and class scores set as the
tests set them: no detector's weights can be had offline).

* bare loop: the honest limit, on ready tensors (batch ``--batch``): the detector's forward
  pass, then per detection above 0.5 (10 at most) the input gradient of its box score
  (pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``), frozen parameters;
* ours: ``saliency explain --method gradcam`` (in process, as ``run_job``): a PNG per detection
  with its box and label drawn, and its manifest row; and ``--method eigencam`` likewise;
* the tutorial's loop ("Class Activation Maps for Object Detection With Faster RCNN"), one photo
  at a time: read, ``ToTensor``, the detector's prediction above 0.5, ``EigenCAM`` on
  ``model.backbone`` with ``fasterrcnn_reshape_transform`` and a ``FasterRCNNBoxScoreTarget``
  of all its boxes (one map per photo), renormalised in each box, boxes drawn with OpenCV,
  ``show_cam_on_image``, PNG. Its Grad-CAM cannot run there (its gradient hook skips the
  pyramid's dict output), so the tutorial uses Eigen-CAM.

The photos go in at the size ours gives the model (the shorter side at 320), so both run the
same network on the same pixels. Every rate is a marginal images/s between ``--small`` and
``--count`` photos, so start-up costs cancel out; the comparison repeats ``--repeat`` times.

    python benchmarks/detection.py [--count 24 --small 8] [--repeat 3]
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
from photos import SAMPLES, count_folders, make_photos  # noqa: E402

from saliency import BoxScoreTarget, load_image, load_model  # noqa: E402
from saliency.engine.options import MethodOptions  # noqa: E402
from saliency.pipeline.drawing import Encoding  # noqa: E402
from saliency.pipeline.job import default_writers  # noqa: E402
from saliency.pipeline.options import JobOptions  # noqa: E402
from saliency.tasks.detection import DetectionsPlan  # noqa: E402

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
MIN_SCORE, MOST = 0.5, 10


def seeded_weights(path: Path) -> Path:
    """The tests' detector: seeded, batch-norm statistics of the sample photos, class scores
    scaled so that they depend on the photo."""
    import torchvision
    from PIL import Image

    torch.manual_seed(0)
    net = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None)
    photos = [
        torch.from_numpy(
            np.asarray(Image.open(p).convert("RGB").resize((320, 320)), dtype=np.float32) / 255
        ).permute(2, 0, 1)
        for p in sorted(SAMPLES.glob("*.[jp][pn]g"))
    ]
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    net.train()
    with torch.no_grad():
        net.backbone(net.transform(photos)[0].tensors)
        head = net.roi_heads.box_predictor.cls_score
        head.weight.mul_(30)
        head.bias[1] += 4.0
        head.bias[18] += 3.5
    torch.save(net.eval().state_dict(), path)
    return path


def bare_loop(loaded, tensors: list[torch.Tensor], batch: int) -> tuple[float, int]:
    """Seconds for forward + each detection's input gradient over ready tensors; detections."""
    model = loaded.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    count = 0
    start = time.perf_counter()
    for begin in range(0, len(tensors), batch):
        x = torch.stack(tensors[begin : begin + batch]).requires_grad_(True)
        found = model(x)
        kept = (found[..., 4] >= MIN_SCORE).sum(dim=1).clamp(max=MOST)
        for rank in range(int(kept.max()) if len(kept) else 0):
            target = BoxScoreTarget(
                found[:, rank : rank + 1, :4].detach(), found[:, rank, 5:6].long()
            )
            keep = rank < int(kept.max()) - 1
            torch.autograd.grad(target.score(found)[kept > rank].sum(), x, retain_graph=keep)
        count += int(kept.sum())
    return time.perf_counter() - start, count


def tutorial_loop(loaded, photos: list[Path], out: Path) -> float:
    """Seconds for pytorch-grad-cam's detection tutorial over ``photos``, one at a time."""
    import cv2
    import torchvision.transforms as T
    from pytorch_grad_cam import EigenCAM
    from pytorch_grad_cam.utils.image import scale_cam_image, show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
    from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform

    model = loaded.model.detector.eval()
    size = loaded.input_size
    cam = EigenCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    for path in photos:
        rgb = cv2.imread(str(path))[:, :, ::-1]
        height, width = rgb.shape[:2]
        scale = size / min(height, width)
        rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)))
        image = np.float32(rgb) / 255
        x = T.ToTensor()(rgb)[None]
        with torch.no_grad():
            found = model(x)[0]
        keep = found["scores"] >= MIN_SCORE
        boxes = found["boxes"][keep][:MOST].int().numpy()
        labels = found["labels"][keep][:MOST]
        targets = [
            FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=found["boxes"][keep][:MOST])
        ]
        grayscale = cam(x, targets=targets)[0]
        renormalized = np.zeros(grayscale.shape, dtype=np.float32)
        for x1, y1, x2, y2 in boxes:  # the tutorial's renormalize_cam_in_bounding_boxes
            renormalized[y1:y2, x1:x2] = scale_cam_image(grayscale[y1:y2, x1:x2].copy())
        picture = show_cam_on_image(image, scale_cam_image(renormalized), use_rgb=True)
        for (x1, y1, x2, y2), label in zip(boxes, labels.tolist(), strict=True):
            cv2.rectangle(picture, (x1, y1), (x2, y2), (255, 255, 255), 2)
            name = loaded.categories[label]
            cv2.putText(
                picture, name, (x1, y1 - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2
            )
        cv2.imwrite(str(out / f"{path.stem}.eigencam.png"), picture[:, :, ::-1])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--small", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-det")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    loaded = load_model(MODEL, weights=seeded_weights(args.work / "detector.pth"), device="cpu")
    threads = torch.get_num_threads()
    print(f"{MODEL} (seeded), 1024x768 JPEGs at 427x320, PNG, CPU, {os.cpu_count()} cores, "
          f"{threads} torch threads")  # fmt: skip
    photos = make_photos(args.work / "photos", args.count, (1024, 768))
    folders = count_folders(args.work, photos, (args.small, args.count))
    tensors = [loaded.preprocess(load_image(p))[0] for p in photos]
    out, writers = args.work / "out", default_writers(loaded.device)
    spec = DetectionsPlan(k=MOST, min_score=MIN_SCORE)

    def ours(method: str):
        options = JobOptions(
            methods=(method,), target=spec, encoding=Encoding("png"),
            method_options=MethodOptions(batch_size=args.batch),
        )  # fmt: skip
        return lambda n: pipeline(loaded, folders[n], out, options, writers)

    detections: list[int] = []

    def bare(n: int) -> float:
        seconds, found = bare_loop(loaded, tensors[:n], args.batch)
        detections.append(found)
        return seconds

    runs = {
        "bare loop": bare,
        "ours gradcam": ours("gradcam"),
        "ours eigencam": ours("eigencam"),
        "tutorial eigencam": lambda n: tutorial_loop(loaded, photos[:n], out),
    }
    for run in runs.values():  # warm-up
        run(args.small)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            rates[name].append(marginal(run, args.small, args.count))
    print(f"detections above {MIN_SCORE} per photo: {detections[-1] / args.count:.2f}")
    print(f"marginal images/s between {args.small} and {args.count} photos, {args.repeat} runs:")
    for name, found in rates.items():
        print(f"  {name:20s} " + "  ".join(f"{r:6.2f}" for r in found))
    print("ratios per run (median, min to max):")
    for a, b in (
        ("ours gradcam", "bare loop"),
        ("ours gradcam", "tutorial eigencam"),
        ("ours eigencam", "tutorial eigencam"),
    ):
        ratios = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        print(f"  {a} ÷ {b}: {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f} to {max(ratios):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
