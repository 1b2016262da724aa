"""The pipeline's own ceiling: ``explain`` with a model whose pass costs next to nothing, so
what is measured is everything around the model (decode, preprocess, prepare, paint, encode,
write, and the hand-offs between processes), on the CPU path and on the device path (decoded,
prepared and drawn where the model is: here the CPU, as ``--device-pipeline`` runs it).

It tells what any host can reach whatever its model: a run can go no faster than this per core,
and a GPU's model loop is usually far above it. All figures come from one run:

1. images/s of each path, a marginal rate between ``--small`` and ``--count`` 1024x768 JPEG
   photos written as PNG (start-up costs cancel out), and per core of this machine;
2. each stage's milliseconds per picture on one thread, and the images/s per core they add
   up to.

    python benchmarks/ceiling.py [--count 128] [--small 32] [--fit resize] [--format png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from end_to_end import marginal, pipeline, stage_shares
from photos import count_folders, make_photos
from torch import nn

from saliency import load_model
from saliency.engine.options import MethodOptions
from saliency.files.inputs import collect_inputs
from saliency.pipeline.drawing import Encoding
from saliency.pipeline.job import default_writers
from saliency.pipeline.options import JobOptions


class Free(nn.Module):
    """A classifier whose pass costs next to nothing: one strided convolution, a ReLU (so the
    rules have a unit), and a linear head over the 1,000 ImageNet classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 8, stride=32)
        self.head = nn.Linear(4, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--small", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fit", default="resize", choices=("native", "crop", "resize"))
    parser.add_argument("--format", default="png", choices=("png", "jpg"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-bench")
    args = parser.parse_args()
    torch.manual_seed(0)
    loaded = replace(load_model(), model=Free().eval(), name="free")  # Lite0's preprocessing
    cores = os.cpu_count() or 1
    writers = default_writers(loaded.device)
    photos = make_photos(args.work / "photos", args.count, (1024, 768))
    folders = count_folders(args.work, photos, (args.small, args.count))
    out = args.work / "ceiling-out"
    print(f"a model of next to no cost, batch {args.batch}, 1024x768 JPEGs in, {args.format} out, "
          f"--fit {args.fit}, {cores} cores, {writers} writer processes")  # fmt: skip
    for name, resident in (("CPU path", False), ("device path (on the CPU)", True)):
        options = JobOptions(
            methods=("guided",), fit=args.fit, encoding=Encoding(args.format), resident=resident,
            method_options=MethodOptions(batch_size=args.batch),
        )  # fmt: skip
        pipeline(loaded, folders[args.small], out, options, writers)  # warm-up
        rate = marginal(
            lambda n, o=options: pipeline(loaded, folders[n], out, o, writers),
            args.small,
            args.count,
        )
        print(f"  {name:26s} {rate:7.1f} images/s, {rate / cores:6.1f} per core")
    files = collect_inputs([str(folders[args.small])]).files[:16]
    shares = stage_shares(loaded, [f.path for f in files], JobOptions(fit=args.fit))
    print("one picture's stages on one thread (ms):")
    for stage, ms in shares.items():
        print(f"  {stage:20s} {ms:6.2f}")
    other = "encode jpg" if args.format == "png" else "encode png"
    own = sum(ms for stage, ms in shares.items() if stage not in ("model", other))
    print(f"around the model, {args.format} out: {own:.2f} ms a picture: "
          f"{1000 / own:.1f} images/s per core at most")  # fmt: skip


if __name__ == "__main__":
    main()
