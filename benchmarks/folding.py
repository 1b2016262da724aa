"""What folding batch norms into convolutions gives the tuned pass, in one run.

Three copies of the model: as loaded, tuned with every norm kept as its own per-channel map
(``saliency.tuned`` with every convolution in ``keep``: the tuned pass before folding), and
tuned (norms folded where the code proves it, :mod:`saliency.models.folding`). Two loops each:

* the bare loop (``compiled.bare``): forward + ``torch.autograd.grad`` of the top-1 scores to
  the input (frozen parameters, ready tensors), batch ``--batch`` at ``--size``: what
  ``explain`` costs at least;
* the scoring pass: forward only, under ``no_grad``, 4 copies at 336x224: what ``evaluate``
  spends on each batch of perturbed copies on a CPU.

Rounds interleave the variants; each figure is the median of ``--rounds``.

    python benchmarks/folding.py [--model efficientnet_lite0] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from compiled import bare
from torch import nn

from saliency import load_model, tuned


def _scoring(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="random: any architecture offline")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, device="cpu", weights=args.weights).model
    for p in model.parameters():
        p.requires_grad_(False)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    variants = {"plain": model, "norms kept": tuned(model, keep=convs), "folded": tuned(model)}
    loops = {
        f"bare loop, batch {args.batch} at {args.size}": torch.randn(
            args.batch, 3, args.size, args.size
        ),
        "scoring pass, 4 copies at 336x224": torch.randn(4, 3, 224, 336),
    }
    for loop, x in loops.items():
        if loop.startswith("bare"):  # the plain model's top-1 class, the same for every variant
            with torch.no_grad():
                target = model(x).argmax(1)
            steps = {name: partial(bare, m, x, target) for name, m in variants.items()}
        else:
            steps = {name: partial(_scoring, m, x) for name, m in variants.items()}
        for step in steps.values():
            step()  # warm-up: oneDNN's kernels chosen, memory allocated
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                started = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
        print(loop)
        for name, ms in medians.items():
            print(f"  {name:11s} {ms:7.1f} ms   plain ÷ this {medians['plain'] / ms:4.2f}")
        print(f"  folded ÷ norms kept: {medians['norms kept'] / medians['folded']:.2f}x faster")


if __name__ == "__main__":
    main()
