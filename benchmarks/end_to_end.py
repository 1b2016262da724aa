"""End-to-end benchmark: everything measured in one run, on the same photos, model and batch.

1. images/s of the bare model loop (forward + input gradient on ready tensors, frozen
   parameters: the honest limit) and of ``saliency explain`` writing png and jpg; each a marginal
   rate between ``--small`` and ``--count`` photos, so start-up costs cancel out;
2. where one image's time goes, stage by stage (decode and preprocess, model, prepare + paint,
   encode png / jpg, write), each timed alone on one thread;
3. ``gradient + deconvnet + guided`` in one run ÷ three single-method runs (png);
4. the tuned pass (``saliency.tuned``, the default on a CPU) ÷ the plain pass (``--plain-pass``):
   the bare loops, and ``explain`` writing png, ``--repeat`` times, in alternating order;
5. peak memory of the command (its process and every worker process) for 64 and 512 photos.

    python benchmarks/end_to_end.py [--fit resize] [--count 256] [--device cuda --batch 64]
        [--repeat 3] [--skip-three] [--skip-rss]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import make_photos  # noqa: E402

from saliency import load_image, load_model, tuned  # noqa: E402
from saliency.engine.options import MethodOptions  # noqa: E402
from saliency.files.inputs import collect_inputs  # noqa: E402
from saliency.pictures.paint import RenderOptions, paint  # noqa: E402
from saliency.pictures.render import prepare  # noqa: E402
from saliency.pipeline.drawing import Encoding  # noqa: E402
from saliency.pipeline.job import default_writers, run_job  # noqa: E402
from saliency.pipeline.options import JobOptions  # noqa: E402
from saliency.pipeline.stages import decode  # noqa: E402


def bare_loop(loaded, batch: torch.Tensor, count: int, model=None) -> float:
    """Seconds for ``count`` images: forward + ``autograd.grad`` on a ready batch, repeated."""
    model = loaded.model if model is None else model
    for p in model.parameters():
        p.requires_grad_(False)
    batch = batch.to(loaded.device)
    start = time.perf_counter()
    for _ in range(0, count, batch.shape[0]):
        x = batch.clone().requires_grad_(True)
        logits = model(x)
        torch.autograd.grad(logits.max(1).values.sum(), x)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad_(True)
    return elapsed


MODEL_THREADS: int | None = None  # torch threads during runs (None: as set)


def pipeline(loaded, folder: Path, out: Path, options: JobOptions, writers: int | None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    files = collect_inputs([str(folder)]).files
    threads = torch.get_num_threads()
    torch.set_num_threads(MODEL_THREADS or threads)
    failed: list[str] = []

    def on_image(outcome) -> None:
        if outcome.error:
            failed.append(f"{outcome.input.path.name}: {outcome.error}")

    start = time.perf_counter()
    run_job(loaded, files, out, options, writers=writers, on_image=on_image)
    elapsed = time.perf_counter() - start
    torch.set_num_threads(threads)
    if failed:  # a run that fails fast would look faster than the bare loop
        raise SystemExit(f"{len(failed)} of {len(files)} photos failed, e.g. {failed[0]}")
    return elapsed


def marginal(run, small: int, large: int) -> float:
    """Images/s between ``small`` and ``large`` images: (large - small) / (t_large - t_small)."""
    return (large - small) / (run(large) - run(small))


def pass_speedups(loaded, ready, folders, out, options, writers, args) -> None:  # noqa: ANN001
    """The tuned pass ÷ the plain pass, bare and in ``explain``, run by run in turn."""
    fast = tuned(loaded.model)
    ratios: dict[str, list[float]] = {"bare loop": [], "explain --format png": []}
    for run in range(args.repeat):
        rates = {}
        for tune in (False, True) if run % 2 == 0 else (True, False):
            model = fast if tune else loaded.model
            rates[("bare loop", tune)] = marginal(
                lambda n, m=model: bare_loop(loaded, ready, n, m), args.small, args.count
            )
            chosen = replace(options(), tuned=tune)
            rates[("explain --format png", tune)] = marginal(
                lambda n, o=chosen: pipeline(loaded, folders[n], out, o, writers),
                args.small,
                args.count,
            )
        for what in ratios:
            ratios[what].append(rates[(what, True)] / rates[(what, False)])
            plain, fast_rate = rates[(what, False)], rates[(what, True)]
            print(
                f"  run {run + 1}: {what:22s} plain {plain:6.1f}, tuned {fast_rate:6.1f} images/s"
            )
    for what, found in ratios.items():
        spread = f"{min(found):.2f} to {max(found):.2f}"
        print(f"tuned ÷ plain pass, {what}: median {statistics.median(found):.2f} ({spread})")


def stage_shares(loaded, photos: list[Path], options: JobOptions) -> dict[str, float]:
    """Milliseconds per image of each stage, alone on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    files = collect_inputs([str(p) for p in photos]).files
    stages = (
        "decode + preprocess",
        "model",
        "photo decoded again",
        "prepare + paint",
        "encode png",
        "encode jpg",
        "write",
    )
    times: dict[str, float] = dict.fromkeys(stages, 0.0)
    # a warm-up picture first: the first paint imports matplotlib's colormaps (~0.1 s), which
    # spread over 16 photos read as 7 ms a picture
    warm = decode(files[0], loaded, options.fit)
    assert warm.tensor is not None and warm.geometry is not None
    plane = torch.rand(3, *warm.tensor.shape[-2:])
    paint(load_image(files[0].path), prepare(plane, RenderOptions()), warm.geometry,
          RenderOptions())  # fmt: skip
    for file in files:
        start = time.perf_counter()
        decoded = decode(file, loaded, options.fit)
        times["decode + preprocess"] += time.perf_counter() - start
        assert decoded.tensor is not None and decoded.geometry is not None
        x = decoded.tensor[None].to(loaded.device).requires_grad_(True)
        start = time.perf_counter()
        logits = loaded.model(x)
        grad = torch.autograd.grad(logits.max(1).values.sum(), x)[0]
        times["model"] += time.perf_counter() - start
        start = time.perf_counter()
        photo = load_image(file.path)  # as the writer does: the picture is drawn on the photo
        times["photo decoded again"] += time.perf_counter() - start
        start = time.perf_counter()
        picture = paint(photo, prepare(grad[0], RenderOptions()), decoded.geometry, RenderOptions())
        times["prepare + paint"] += time.perf_counter() - start
        for fmt in ("png", "jpg"):
            buffer = io.BytesIO()
            start = time.perf_counter()
            Encoding(fmt).save(picture, buffer, "overlay", "{}")
            times[f"encode {fmt}"] += time.perf_counter() - start
        data = buffer.getvalue()
        target = Path(tempfile.gettempdir()) / "saliency-bench-write.bin"
        start = time.perf_counter()
        target.write_bytes(data)
        os.replace(target, target.with_suffix(".done"))
        times["write"] += time.perf_counter() - start
    torch.set_num_threads(threads)
    return {stage: 1000 * t / len(files) for stage, t in times.items()}


def peak_rss_mib(folder: Path, out: Path, args: argparse.Namespace) -> float:
    """Peak of the summed resident memory of the command and all its child processes."""
    command = [
        *(sys.executable, "-m", "saliency_cli", "explain", str(folder), "--out", str(out), "-q"),
        *("--batch-size", str(args.batch), "--device", args.device, "--fit", args.fit),
    ]
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(command)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    proc.wait()
    done.set()
    sampler.join()
    return peak / 1024


def _tree_rss_kib(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fit", default="resize", choices=("native", "crop", "resize"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=None, help="writer processes")
    parser.add_argument("--model-threads", type=int, default=None, help="torch threads in runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of tuned vs plain pass")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-three", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-bench")
    args = parser.parse_args()
    global MODEL_THREADS
    MODEL_THREADS = args.model_threads

    loaded = load_model(device=args.device)  # the offline default, real weights
    where = (
        torch.cuda.get_device_name()
        if loaded.device.type == "cuda"
        else f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    )
    writers = args.workers if args.workers is not None else default_writers(loaded.device)
    print(
        f"{loaded.name}, batch {args.batch}, 1024x768 JPEGs, --fit {args.fit}, {where}, "
        f"{writers} writer processes, {args.model_threads or torch.get_num_threads()} torch "
        "threads in runs"
    )
    photos = make_photos(args.work / "photos", args.count, (1024, 768))
    big = args.work / "big"
    small = args.work / "small"
    for folder, count in ((big, args.count), (small, args.small)):
        folder.mkdir(parents=True, exist_ok=True)
        for p in photos[:count]:
            if not (folder / p.name).exists():
                (folder / p.name).symlink_to(p)
    folders = {args.count: big, args.small: small}
    out = args.work / "out"

    def options(methods=("guided",), fmt="png") -> JobOptions:
        return JobOptions(
            methods=methods,
            fit=args.fit,
            encoding=Encoding(fmt),
            method_options=MethodOptions(batch_size=args.batch),
        )

    first = collect_inputs([str(small)]).files[: args.batch]
    ready = torch.stack([decode(f, loaded, args.fit).tensor for f in first])
    pipeline(loaded, small, out, options(), writers)  # warm-up: page cache, allocator, forkserver
    rates = {"bare loop": marginal(lambda n: bare_loop(loaded, ready, n), args.small, args.count)}
    for fmt in ("png", "jpg"):
        rates[f"explain --format {fmt}"] = marginal(
            lambda n, f=fmt: pipeline(loaded, folders[n], out, options(fmt=f), writers),
            args.small,
            args.count,
        )
    bare = rates["bare loop"]
    print(f"marginal images/s between {args.small} and {args.count} photos:")
    for name, rate in rates.items():
        print(f"  {name:24s} {rate:7.1f} images/s   {rate / bare:5.2f} x bare loop")

    shares = stage_shares(loaded, photos[:16], options())
    total = sum(v for k, v in shares.items() if k != "encode jpg")
    print("one image, stage by stage on one thread (ms; share of the png path):")
    for stage, ms in shares.items():
        share = "" if stage == "encode jpg" else f"  {100 * ms / total:4.0f}%"
        print(f"  {stage:22s} {ms:7.1f}{share}")

    pass_speedups(loaded, ready, folders, out, options, writers, args)
    if args.skip_three:
        return
    three = pipeline(loaded, big, out, options(("gradient", "deconvnet", "guided")), writers)
    singles = sum(
        pipeline(loaded, big, out, options((m,)), writers)
        for m in ("gradient", "deconvnet", "guided")
    )
    print(f"gradient + deconvnet + guided in one run ÷ three single runs: {three / singles:.3f}")

    if not args.skip_rss:
        many = make_photos(args.work / "photos", 512, (1024, 768))
        rss = {}
        for count in (64, 512):
            folder = args.work / f"rss{count}"
            folder.mkdir(parents=True, exist_ok=True)
            for p in many[:count]:
                if not (folder / p.name).exists():
                    (folder / p.name).symlink_to(p)
            rss[count] = peak_rss_mib(folder, out, args)
        print(
            f"peak RSS, process + workers: 64 photos {rss[64]:.0f} MiB, 512 photos "
            f"{rss[512]:.0f} MiB: {100 * (rss[512] / rss[64] - 1):+.1f}%"
        )


if __name__ == "__main__":
    main()
