"""Forward-only methods against their peers, measured in one run on the same photos, model and
device: our ``scorecam`` against pytorch-grad-cam's ``ScoreCAM`` (its default batch of 16), our
``occlusion`` against Captum's ``Occlusion`` (``perturbations_per_eval`` at the best of a few
values, tried first on two photos), and both against the honest limit: the bare model loop, as
many forward passes over ready batches with no map made.

Score-CAM costs a forward per channel of its layer: the default layer here, ``blocks.4`` of the
offline model (112 channels), keeps a CPU run to minutes; ``--layer bn2`` (1280) is the
default layer of ``saliency explain``.

    python benchmarks/perturbation.py [--count 16] [--layer blocks.4] [--window 56]
        [--stride 28] [--device cpu] [--batch 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import make_photos  # noqa: E402

from saliency import LoadedModel, explain, load_image, load_model  # noqa: E402
from saliency.engine.layers import captured  # noqa: E402
from saliency.methods.occlusion import window_starts  # noqa: E402


def timed(run: Callable[[], object], device: str) -> float:
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def forward_rate(loaded: LoadedModel, x: torch.Tensor, batch: int, device: str) -> float:
    """Forward passes a second over ready batches of ``batch`` copies, frozen parameters: the
    bare loop. The best of three tries of two batches each, so that the limit is not lowered by
    a moment of load."""
    copies = x[:batch].repeat(-(-batch // len(x)), 1, 1, 1)[:batch].contiguous()
    model = loaded.model
    for param in model.parameters():
        param.requires_grad_(False)
    with torch.no_grad():
        model(copies)  # warm
        best = min(timed(lambda: [model(copies) for _ in range(2)], device) for _ in range(3))
    return 2 * batch / best


def scorecam(loaded: LoadedModel, x: torch.Tensor, layer: str, batch: int, device: str) -> None:
    from pytorch_grad_cam import ScoreCAM

    model = loaded.model
    ours = timed(lambda: explain(loaded, x, "scorecam", layer=layer, batch_size=batch), device)
    peer = ScoreCAM(model, [model.get_submodule(layer)])
    theirs = timed(lambda: peer(input_tensor=x, targets=None), device)
    with torch.no_grad():
        channels = int(captured(model, layer, x[:1]).shape[1])
    limit = len(x) * (1 + channels) / forward_rate(loaded, x, batch, device)
    peer_name = f"pytorch-grad-cam ScoreCAM (batch 16; {channels} channels at {layer})"
    report("scorecam", len(x), ours, theirs, limit, peer_name)


def occlusion(
    loaded: LoadedModel, x: torch.Tensor, window: int, stride: int, batch: int, device: str
) -> None:
    from captum.attr import Occlusion

    from saliency.engine.baselines import make_baseline

    model = loaded.model
    ours = timed(
        lambda: explain(
            loaded,
            x,
            "occlusion",
            window=window,
            stride=stride,
            baseline="black",
            batch_size=batch,
        ),  # fmt: skip
        device,
    )
    base = make_baseline(x, "black", loaded.normalization)
    with torch.no_grad():
        top = torch.cat([model(part).argmax(1) for part in x.split(batch)])
    peer = Occlusion(model)

    def theirs_with(per_eval: int, n: int) -> float:
        with torch.no_grad():
            return timed(
                lambda: peer.attribute(
                    x[:n],
                    sliding_window_shapes=(3, window, window),
                    strides=(3, stride, stride),
                    baselines=base[:n],
                    target=top[:n],
                    perturbations_per_eval=per_eval,
                ),  # fmt: skip
                device,
            )

    trials = {n: theirs_with(n, 2) for n in (8, 16, 32, 64)}
    best = min(trials, key=trials.__getitem__)
    print("  Captum perturbations_per_eval tried on 2 photos: "
          + ", ".join(f"{n}: {s:.1f} s" for n, s in trials.items()) + f"; best {best}")  # fmt: skip
    theirs = theirs_with(best, len(x))
    side = x.shape[-1]
    windows = len(window_starts(side, window, stride)) ** 2
    limit = len(x) * (1 + windows) / forward_rate(loaded, x, batch, device)
    report("occlusion", len(x), ours, theirs, limit, f"Captum Occlusion (per eval {best})")


def report(name: str, count: int, ours: float, theirs: float, limit: float, peer: str) -> None:
    print(f"{name}: saliency {count / ours:.3f} images/s, {peer} {count / theirs:.3f} images/s, "
          f"bare model loop {count / limit:.3f} images/s; ours / peer = {theirs / ours:.2f}x, "
          f"ours / bare loop = {limit / ours:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--layer", default="blocks.4")
    parser.add_argument("--window", type=int, default=56)
    parser.add_argument("--stride", type=int, default=28)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)  # the command's --batch-size
    parser.add_argument("--only", choices=("scorecam", "occlusion"))
    args = parser.parse_args()
    loaded = load_model(device=torch.device(args.device))
    with tempfile.TemporaryDirectory() as work:
        paths = make_photos(Path(work), args.count, (640, 480))
        x = torch.stack([loaded.preprocess(load_image(p), "resize")[0] for p in paths])
    x = x.to(loaded.device)
    print(f"{loaded.name} on {args.device} ({torch.get_num_threads()} threads), {args.count} "
          f"photos at 224x224, our batches of {args.batch}")  # fmt: skip
    if args.only in (None, "scorecam"):
        scorecam(loaded, x, args.layer, args.batch, args.device)
    if args.only in (None, "occlusion"):
        occlusion(loaded, x, args.window, args.stride, args.batch, args.device)


if __name__ == "__main__":
    main()
