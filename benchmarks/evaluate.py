"""Evaluation speed: images/s of deletion + insertion (20 steps) for one method (Guided
Backprop) on the offline default model, and the ratio to Quantus's closest metric (its pixel
flipping: deletion only; 16 steps, as it needs a step size that divides 224 x 224) on the same
images, model and maps, measured in one run; also our deletion at 16 steps, like for like.

Our time includes computing the maps; Quantus is given them. No baselines are timed (they are
methods like any other: each adds the same cost).

    python benchmarks/evaluate.py [--count 16] [--quantus-count 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import make_photos  # noqa: E402

from saliency import explain, load_image, load_model  # noqa: E402
from saliency.evaluation.ranking import pixel_values  # noqa: E402
from saliency.evaluation.run import Protocol, evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--quantus-count", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    loaded = load_model(device=torch.device(args.device))
    with tempfile.TemporaryDirectory() as work:
        paths = make_photos(Path(work), args.count, (640, 480))
        xs = [loaded.preprocess(load_image(p), "resize")[0] for p in paths]
    print(f"{loaded.name} on {args.device} ({torch.get_num_threads()} threads), 224x224 inputs, "
          f"guided, 20 steps, forward batches of {args.batch}")  # fmt: skip
    evaluate(loaded, xs[:2], ["guided"], ["deletion"], protocol=Protocol(20), baselines=())
    rates = {}
    for metrics, steps in ((["deletion", "insertion"], 20), (["deletion"], 16)):
        start = time.perf_counter()
        protocol = Protocol(steps, batch_size=args.batch)
        evaluate(loaded, xs, ["guided"], metrics, protocol=protocol, baselines=())
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        key = "+".join(metrics)
        rates[key] = args.count / (time.perf_counter() - start)
        print(f"saliency {' + '.join(metrics)}, {steps} steps: {rates[key]:.2f} images/s "
              f"({args.count} images, maps included)")  # fmt: skip
    try:
        import quantus
    except ImportError:
        print("Quantus is not installed here: no ratio")
        return
    n = args.quantus_count
    x = torch.stack(xs[:n]).to(loaded.device)
    result = explain(loaded, x, "guided")
    maps = pixel_values(result.maps.detach(), "max")[:, None].cpu().numpy()
    metric = quantus.PixelFlipping(
        features_in_step=224 * 224 // 16, perturb_baseline="black", disable_warnings=True,
        display_progressbar=False,
    )  # fmt: skip
    start = time.perf_counter()
    metric(model=loaded.model, x_batch=x.cpu().numpy(), y_batch=result.targets.cpu().numpy(),
           a_batch=maps, device=args.device, batch_size=args.batch)  # fmt: skip
    quantus_rate = n / (time.perf_counter() - start)
    print(f"Quantus {quantus.__version__} PixelFlipping, 16 steps: {quantus_rate:.2f} "
          f"images/s ({n} images, maps given)")  # fmt: skip
    print(f"ratio: our deletion + insertion (20 steps) / Quantus's deletion (16): "
          f"{rates['deletion+insertion'] / quantus_rate:.1f}x; deletion / deletion (16 steps "
          f"each): {rates['deletion'] / quantus_rate:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
