"""What a target costs: a segmentation map through a region target, and an embedding's through a
similarity target, against the bare loop of the same score (forward + input gradient on ready
tensors, frozen parameters), measured in one run. A target should cost what a classifier's class
costs: one forward and one backward pass per target.

    python benchmarks/targets.py [--batch 4] [--size 256] [--repeat 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from saliency import RegionTarget, SimilarityTarget, explain


def bare(model: torch.nn.Module, x: torch.Tensor, score) -> float:
    """Seconds for one forward and one input gradient of ``score(output)``."""
    start = time.perf_counter()
    inputs = x.clone().requires_grad_(True)
    output = model(inputs)
    output = output["out"] if isinstance(output, dict) else output
    torch.autograd.grad(score(output).sum(), inputs)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ours(model: torch.nn.Module, x: torch.Tensor, method: str, target, layer=None) -> float:
    start = time.perf_counter()
    settings = {"layer": layer} if layer else {}
    explain(model, x, method, target, **settings)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)

    segmenter = torchvision.models.get_model(
        "fcn_resnet50", weights=None, weights_backbone=None
    ).eval().to(device)  # fmt: skip
    for p in segmenter.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        labels = segmenter(x)["out"].argmax(1)
    category = int(labels.flatten().mode().values)
    mask = (labels == category).float()
    region = RegionTarget(category, mask)

    embedder = torchvision.models.resnet50().eval().to(device)
    embedder.fc = torch.nn.Identity()
    for p in embedder.parameters():
        p.requires_grad_(False)
    reference = torch.randn(2048, device=device)
    similar = SimilarityTarget(reference)

    cases = {
        "fcn_resnet50, region target, gradient": (
            lambda: bare(segmenter, x, region.score),
            lambda: ours(segmenter, x, "gradient", region),
        ),
        "fcn_resnet50, region target, gradcam": (
            lambda: bare(segmenter, x, region.score),
            lambda: ours(segmenter, x, "gradcam", region, "backbone.layer4"),
        ),
        "resnet50 embedding, similarity, gradient": (
            lambda: bare(embedder, x, similar.score),
            lambda: ours(embedder, x, "gradient", similar),
        ),
    }
    where = torch.cuda.get_device_name() if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads"
    )  # fmt: skip
    print(f"batch {args.batch} at {args.size}x{args.size}, {where}, {args.repeat} runs each")
    print(f"{'case':44s} {'bare s':>8s} {'ours s':>8s} {'ours/bare (median, range)':>28s}")
    for name, (base, run) in cases.items():
        base(), run()  # warm-up
        ratios, bases, runs = [], [], []
        for _ in range(args.repeat):  # interleaved, so a slow moment hits both
            b, r = base(), run()
            bases.append(b)
            runs.append(r)
            ratios.append(r / b)
        print(
            f"{name:44s} {statistics.median(bases):8.3f} {statistics.median(runs):8.3f} "
            f"{statistics.median(ratios):10.2f} ({min(ratios):.2f} to {max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
