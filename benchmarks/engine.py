"""Engine benchmark: explain() per method vs. a bare loop and vs. Captum, in one run.

The bare loop is what any saliency map costs at least: a forward pass and
``torch.autograd.grad(score, inputs)`` with frozen parameters. Captum (the optional ``bench``
extra) runs Saliency, Deconvolution and GuidedBackprop on the same inputs. Timings interleave the
contenders round by round and report medians, so drift hits all alike.

    python benchmarks/engine.py [--model efficientnet_lite0] [--batch 16] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings

import torch

from saliency import explain, load_model

METHODS = ("gradient", "deconvnet", "guided")


def bare_loop(model, x, target):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    return grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    loaded = load_model(args.model, weights="random", device=args.device)
    model = loaded.model.eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    with torch.no_grad():
        target = model(x).argmax(1)

    frozen = [p for p in model.parameters() if p.requires_grad]
    contenders = {}

    def bare():
        for p in frozen:
            p.requires_grad_(False)
        try:
            return bare_loop(model, x, target)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    contenders["bare loop"] = bare
    for method in METHODS:
        contenders[f"ours {method}"] = lambda m=method: explain(model, x, m, target).maps
    try:
        from captum.attr import Deconvolution, GuidedBackprop, Saliency

        captum = {"gradient": Saliency, "deconvnet": Deconvolution, "guided": GuidedBackprop}
        for method, cls in captum.items():
            kwargs = {"abs": False} if method == "gradient" else {}
            algo = cls(model)
            contenders[f"captum {method}"] = lambda a=algo, k=kwargs: a.attribute(
                x, target=target, **k
            )
    except ImportError:
        print("captum not installed: pip install -e '.[bench]' to compare with it")

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fn in contenders.values():  # warm-up
            fn()
        order = list(contenders.items())
        shuffle = random.Random(0).shuffle
        for _ in range(args.rounds):
            shuffle(order)  # no contender always runs right after the same other one
            for name, fn in order:
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - start)

    median = {name: statistics.median(ts) for name, ts in times.items()}
    device = (
        torch.cuda.get_device_name() if x.is_cuda else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"model {args.model} (random weights), batch {args.batch}, {args.size}x{args.size}, "
        f"{device}, torch {torch.__version__}, median of {args.rounds} rounds"
    )
    print(f"{'contender':20s} {'ms/batch':>9s} {'images/s':>9s}")
    for name, t in median.items():
        print(f"{name:20s} {t * 1000:9.1f} {args.batch / t:9.1f}")
    print()
    print(f"{'method':10s} {'ours/bare':>10s} {'ours/captum':>12s}   targets: <= 1.05 and <= 1.00")
    for method in METHODS:
        ours = median[f"ours {method}"]
        vs_captum = median.get(f"captum {method}")
        captum_ratio = f"{ours / vs_captum:12.3f}" if vs_captum else f"{'-':>12s}"
        print(f"{method:10s} {ours / median['bare loop']:10.3f} {captum_ratio}")


if __name__ == "__main__":
    main()
