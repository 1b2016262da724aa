"""SmoothGrad and Integrated Gradients: batched copies vs. one pass per copy, in one run.

SmoothGrad's N noisy copies and Integrated Gradients' path points run ``--batch`` inputs per
pass. This compares ``explain(..., smooth=N)`` and ``explain(..., "integrated_gradients",
steps=N)`` for one photo with the naive way, a loop of N single-copy passes (the same copies).
Medians over interleaved rounds.

    python benchmarks/expanded.py [--model efficientnet_lite0] [--copies 32] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from saliency import explain, load_model
from saliency.engine.smoothing import noise_samples, noise_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--copies", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    loaded = load_model(args.model, weights="random", device=args.device)
    x = torch.randn(1, 3, args.size, args.size, device=args.device)
    n = args.copies
    noisy = x + noise_scale(x, 0.15) * noise_samples(tuple(x.shape[1:]), n).to(args.device)
    target = int(explain(loaded, x, "gradient").targets[0])

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    contenders = {
        "smoothgrad batched": lambda: explain(
            loaded, x, "guided", target, smooth=n, batch_size=args.batch
        ),
        "smoothgrad one copy per pass": lambda: [
            explain(loaded, noisy[i : i + 1], "guided", target) for i in range(n)
        ],
        "integrated gradients batched": lambda: explain(
            loaded, x, "integrated_gradients", target, steps=n, batch_size=args.batch
        ),
        "integrated gradients one point per pass": lambda: explain(
            loaded, x, "integrated_gradients", target, steps=n, batch_size=1
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for name, run in contenders.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name:42s} {value * 1000:9.1f} ms")
    smooth = median["smoothgrad batched"] / median["smoothgrad one copy per pass"]
    path = (
        median["integrated gradients batched"] / median["integrated gradients one point per pass"]
    )
    print(f"SmoothGrad, {n} copies, batch {args.batch}: batched / one per pass = {smooth:.3f}")
    print(
        f"Integrated Gradients, {n} steps, batch {args.batch}: batched / one per pass = {path:.3f}"
    )


if __name__ == "__main__":
    main()
