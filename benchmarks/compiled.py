"""The model's own pass, three ways: eager (NCHW), eager ``channels_last``, and
``torch.compile`` (inductor), for the bare loop and for our methods, in one run.

* bare loop: forward + ``torch.autograd.grad(score, inputs)`` with frozen parameters on ready
  tensors, what any gradient map costs at least;
* bare layer loop: forward + the gradient at the CAM layer only (what Grad-CAM costs at least);
* ours: ``explain(model, x, method)`` for ``gradient``, ``guided``, ``gradcam`` and
  ``integrated_gradients`` (``--steps``), eager and with the model and inputs in
  ``channels_last``. The rule engine refuses a compiled model (its backward is one opaque node,
  where no rule can reach the ReLU units), so the compiled column is the bare loops'.

Each variant's maps are checked against eager NCHW (relative L2 error); compile time (the first
call less a steady one) is reported apart. Timings interleave the contenders round by round;
each figure is a median, and ``--repeat`` runs of the whole give the run-to-run range.

    python benchmarks/compiled.py [--models efficientnet_lite0 resnet50 vgg16] [--batch 16]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from saliency import explain, load_model
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
    """Each contender: a callable and, for the maps check, its eager NCHW counterpart."""
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    found: dict[str, Callable[[], torch.Tensor]] = {}
    found["bare eager"] = lambda: bare(model, x, target)
    found["bare channels_last"] = lambda: bare(last, x_last, target)
    found["bare layer eager"] = lambda: bare_layer(model, layer, x, target)
    found["bare layer channels_last"] = lambda: bare_layer(last, layer, x_last, target)
    for method in METHODS:
        kwargs = {"steps": steps, "baseline": "zero"} if method == "integrated_gradients" else {}
        if method == "gradcam":
            kwargs = {"layer": layer}
        found[f"{method} eager"] = lambda m=method, k=kwargs: explain(model, x, m, target, **k).maps
        found[f"{method} channels_last"] = lambda m=method, k=kwargs: (
            explain(last, x_last, m, target, **k).maps
        )
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
    runs = contenders(model, x, target, layer, args.steps)
    errors = {}
    for key, fn in runs.items():
        if key.endswith("channels_last"):
            errors[key] = relative(fn(), runs[key.replace("channels_last", "eager")]())
    fast, compile_seconds = compiled(model, x, target)
    runs["bare compiled"] = fast
    errors["bare compiled"] = relative(fast(), runs["bare eager"]())
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
    print(f"  {'contender':34s} {'ms/batch':>9s} {'÷ eager':>8s} {'rel. L2 vs eager':>17s}")
    for key, t in median.items():
        base = median[key.rsplit(" ", 1)[0] + " eager"]
        error = f"{errors[key]:17.1e}" if key in errors else f"{'':17s}"
        print(f"  {key:34s} {t * 1000:9.1f} {base / t:8.2f} {error}")
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
    print("\nspeed-up over eager NCHW, per run (min to max over runs):")
    for name, runs in results.items():
        for key in runs[0]:
            if key == "compile seconds" or key.endswith(" eager"):
                continue
            base = key.rsplit(" ", 1)[0] + " eager"
            ups = [r[base] / r[key] for r in runs]
            print(f"  {name:20s} {key:34s} {min(ups):.2f} to {max(ups):.2f}")


if __name__ == "__main__":
    main()
