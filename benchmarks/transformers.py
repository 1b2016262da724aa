"""What rollout and gradient-weighted rollout cost on a vision transformer, against the honest
limits, all measured in one run on the same batch and model:

* ``rollout`` (``explain``: the logits' forward pass with attention made explicit and read, then
  the class token's row rolled out) ÷ a plain forward pass of the model as given (fused
  attention, no gradient);
* ``gradient_rollout`` (one forward and one backward down to the first block's attention) ÷ the
  bare forward + input-gradient loop (frozen parameters, ready tensors);
* ``gradcam`` at the last block's norm ÷ the same bare loop, for scale.

Each figure is the median of ``--repeat`` timings taken in turn, after a warm-up.

    python benchmarks/transformers.py [--model vit_tiny_patch16_224] [--batch 16] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch

from saliency import explain


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_tiny_patch16_224", help="a timm ViT")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)

    def forward() -> object:
        with torch.no_grad():
            return model(x)

    def bare() -> object:
        for p in model.parameters():
            p.requires_grad_(False)
        inputs = x.clone().requires_grad_(True)
        logits = model(inputs)
        return torch.autograd.grad(logits.max(1).values.sum(), inputs)

    steps: dict[str, Callable[[], object]] = {
        "forward": forward,
        "bare loop": bare,
        "rollout": lambda: explain(model, x, "rollout", batch_size=args.batch),
        "gradient_rollout": lambda: explain(model, x, "gradient_rollout", batch_size=args.batch),
        "gradcam": lambda: explain(model, x, "gradcam", batch_size=args.batch),
    }
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeat):
        for name, step in steps.items():
            times[name].append(timed(step))
    median = {name: statistics.median(found) for name, found in times.items()}
    print(f"{args.model}, batch {args.batch} at {args.size} px, {torch.get_num_threads()} "
          f"threads, median of {args.repeat}")  # fmt: skip
    for name, seconds in median.items():
        print(f"  {name:17s} {seconds * 1000:8.1f} ms  ({args.batch / seconds:6.1f} images/s)")
    rollout = median["rollout"] / median["forward"]
    print(f"rollout / forward:            {rollout:.3f} (target <= 1.15)")
    print(f"gradient_rollout / bare loop: {median['gradient_rollout'] / median['bare loop']:.3f} "
          "(target <= 1.25)")
    print(f"gradcam / bare loop:          {median['gradcam'] / median['bare loop']:.3f}")


if __name__ == "__main__":
    main()
