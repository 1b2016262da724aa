"""The model's own pass, three ways: eager as loaded, eager :func:`saliency.tuned` (batch
norms as per-channel scales, weights ``channels_last``: what ``explain`` runs on a CPU), and
``torch.compile`` (inductor), for the bare loop and for our methods, in one run.

* bare loop: forward + ``torch.autograd.grad(score, inputs)`` with frozen parameters on ready
  tensors, what any gradient map costs at least;
* bare layer loop: forward + the gradient at the CAM layer only (what Grad-CAM costs at least);
* ours: ``explain(model, x, method)`` for ``gradient``, ``guided``, ``gradcam`` and
  ``integrated_gradients`` (``--steps``), with the model as loaded and tuned. The rule engine
  refuses a compiled model (its backward is one opaque node, where no rule can reach the ReLU
  units), so the compiled column is the bare loop's.

Each variant's maps (of the batch's first two inputs) are compared with the model as loaded
(relative L2 error) and with the same method run in float64, next to the loaded model's own
float32 distance from float64: how far float32 summation order alone moves a map. Compile time
(the first call less a steady one) is reported apart. Timings interleave the contenders round
by round; each figure is a median, and ``--repeat`` runs of the whole give the run-to-run range.

    python benchmarks/compiled.py [--models efficientnet_lite0 resnet50 vgg16] [--batch 16]
"""

from __future__ import annotations

import argparse
import copy
import functools
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from saliency import explain, load_model, tuned
from saliency.engine.layers import LayerCapture, resolve_layer

METHODS = ("gradient", "guided", "gradcam", "integrated_gradients")


def bare(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    return grad


def bare_layer(model: torch.nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor):
    with LayerCapture(model, layer) as capture:  # the graph from the input, as ours builds
        logits = model(x.detach().requires_grad_(True))
        activation = capture.activation()
        (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), activation)
    return grad


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


def contenders(model, x, target, layer, steps):  # noqa: ANN001, ANN201
    """Each contender: ``name variant`` -> a callable of (model, inputs, targets), and the
    models of the variants (eager, tuned)."""
    models = {"eager": model, "tuned": tuned(model)}
    found: dict[str, Callable[..., torch.Tensor]] = {}
    for variant in models:
        found[f"bare {variant}"] = bare
        found[f"bare layer {variant}"] = lambda m, x, t: bare_layer(m, layer, x, t)
        for method in METHODS:
            kwargs = (
                {"steps": steps, "baseline": "zero"} if method == "integrated_gradients" else {}
            )
            kwargs = {"layer": layer} if method == "gradcam" else kwargs
            found[f"{method} {variant}"] = lambda m, x, t, n=method, k=kwargs: (
                explain(m, x, n, t, **k).maps
            )
    return found, models


def errors(runs, models, x, target) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """Per contender, on the first two inputs: the relative L2 error of its maps against the
    eager ones, and against the eager ones in float64."""
    x, target = x[:2], target[:2]
    exact = copy.deepcopy(models["eager"]).double()
    eager: dict[str, torch.Tensor] = {}  # per contender's name: eager float32, then float64
    reference: dict[str, torch.Tensor] = {}
    found = {}
    for key, fn in runs.items():  # each name's eager variant comes first
        name, variant = key.rsplit(" ", 1)
        if name not in eager:
            eager[name] = fn(models["eager"], x, target)
            reference[name] = fn(exact, x.double(), target)
        maps = eager[name] if variant == "eager" else fn(models[variant], x, target)
        found[key] = (relative(maps, eager[name]), relative(maps, reference[name]))
    return found


def compiled(model, x, target):  # noqa: ANN001, ANN201
    """The compiled bare loop, and its compile time in seconds (first call less a steady)."""
    fast = torch.compile(model)
    start = time.perf_counter()
    bare(fast, x, target)
    first = time.perf_counter() - start
    start = time.perf_counter()
    bare(fast, x, target)
    return (lambda: bare(fast, x, target)), first - (time.perf_counter() - start)


def one_model(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per batch of every contender on ``name``; prints its table."""
    torch.manual_seed(0)
    loaded = load_model(name, weights=None if name == "efficientnet_lite0" else "random",
                        device=args.device)  # fmt: skip
    model = loaded.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    with torch.no_grad():
        target = model(x).argmax(1)
    layer = resolve_layer(model, x[:1])
    found, models = contenders(model, x, target, layer, args.steps)
    error = errors(found, models, x, target)
    runs = {
        k: functools.partial(f, models[k.rsplit(" ", 1)[1]], x, target) for k, f in found.items()
    }
    fast, compile_seconds = compiled(model, x, target)
    runs["bare compiled"] = fast
    error["bare compiled"] = (relative(fast(), runs["bare eager"]()), float("nan"))
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: dict[str, list[float]] = {key: [] for key in runs}
    order = list(runs.items())
    for _ in range(args.rounds):
        random.Random(len(times[order[0][0]])).shuffle(order)
        for key, fn in order:
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(t) for key, t in times.items()}
    print(f"\n{name}: batch {args.batch}, {args.size}x{args.size}, layer {layer}, "
          f"compile {compile_seconds:.1f} s, median of {args.rounds} rounds")  # fmt: skip
    print(f"  {'contender':34s} {'ms/batch':>9s} {'÷ eager':>8s} {'rel. L2 vs eager':>17s} "
          f"{'vs float64':>11s}")  # fmt: skip
    for key, t in median.items():
        base = median[key.rsplit(" ", 1)[0] + " eager"]
        to_eager, to_exact = error[key]
        print(f"  {key:34s} {t * 1000:9.1f} {base / t:8.2f} "
              f"{to_eager:17.1e} {to_exact:11.1e}")  # fmt: skip
    median["compile seconds"] = compile_seconds
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50", "vgg16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else (
        f"CPU, {torch.get_num_threads()} torch threads"
    )  # fmt: skip
    print(f"torch {torch.__version__}, {where}")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.models}
    for run in range(args.repeat):
        print(f"\n== run {run + 1} of {args.repeat}")
        for name in args.models:
            torch._dynamo.reset()
            results[name].append(one_model(name, args))
    print("\nspeed-up over eager as loaded, per run (min to max over runs):")
    for name, runs in results.items():
        for key in runs[0]:
            if key == "compile seconds" or key.endswith(" eager"):
                continue
            base = key.rsplit(" ", 1)[0] + " eager"
            ups = [r[base] / r[key] for r in runs]
            print(f"  {name:20s} {key:34s} {min(ups):.2f} to {max(ups):.2f}")


if __name__ == "__main__":
    main()
