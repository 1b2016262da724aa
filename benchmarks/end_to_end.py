"""End-to-end benchmark, in one run on the same photos, model and batch size:

1. ``saliency explain``'s pipeline (decode, preprocess, explain, render, encode, write) vs. a bare
   loop (decode, preprocess, forward + input gradient; nothing drawn or written), images/s;
2. ``--method all`` vs. three single-method runs;
3. peak memory (RSS) of the command for 64 vs. 512 photos.

    python benchmarks/end_to_end.py [--count 64] [--sizes 1024x768 4032x3024] [--skip-rss]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import SIZES, make_photos  # noqa: E402

from saliency import load_image, load_model  # noqa: E402
from saliency.engine.method import MethodOptions  # noqa: E402
from saliency.files.inputs import collect_inputs  # noqa: E402
from saliency.pipeline.job import run_job  # noqa: E402
from saliency.pipeline.options import JobOptions  # noqa: E402


def bare_loop(loaded, paths, batch_size):
    """What a plain script does: decode, the model's preprocessing, forward + input gradient."""
    model = loaded.model
    for p in model.parameters():
        p.requires_grad_(False)
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        tensors = [loaded.preprocess(load_image(p))[0] for p in paths[i : i + batch_size]]
        x = torch.stack(tensors).to(loaded.device).requires_grad_(True)
        logits = model(x)
        torch.autograd.grad(logits.max(1).values.sum(), x)
    elapsed = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad_(True)
    return elapsed


def pipeline(loaded, folder, out, batch_size, methods):
    shutil.rmtree(out, ignore_errors=True)
    files = collect_inputs([str(folder)]).files
    options = JobOptions(methods=methods, method_options=MethodOptions(batch_size=batch_size))
    start = time.perf_counter()
    run_job(loaded, files, out, options)
    return time.perf_counter() - start


def peak_rss_mib(folder, out, batch_size):
    script = (
        "import sys\n"
        "from saliency_cli.app import main\n"
        f"sys.argv = ['saliency', 'explain', {str(folder)!r}, '--out', {str(out)!r}, '-q',"
        f" '--batch-size', '{batch_size}', '--device', 'cpu']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(status.split()[0])\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-bench")
    args = parser.parse_args()

    loaded = load_model(device=args.device)  # the offline default, real weights
    device = (
        torch.cuda.get_device_name()
        if loaded.device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} torch threads")
    )
    print(f"model {loaded.name}, batch {args.batch}, {args.count} JPEG photos, {device}")
    out = args.work / "out"
    for size in args.sizes:
        folder = args.work / size
        paths = make_photos(folder, args.count, SIZES[size])
        pipeline(loaded, folder, out, args.batch, ("guided",))  # warm-up: page cache, allocator
        bare = bare_loop(loaded, paths, args.batch)
        ours = pipeline(loaded, folder, out, args.batch, ("guided",))
        print(
            f"{size}: bare loop {args.count / bare:6.1f} images/s, saliency explain "
            f"{args.count / ours:6.1f} images/s, ratio {bare / ours:.3f} (target >= 0.8)"
        )

    folder = args.work / args.sizes[0]
    all_three = pipeline(loaded, folder, out, args.batch, ("gradient", "deconvnet", "guided"))
    singles = sum(
        pipeline(loaded, folder, out, args.batch, (m,)) for m in ("gradient", "deconvnet", "guided")
    )
    print(
        f"--method all {all_three:.1f} s vs three single-method runs {singles:.1f} s: "
        f"ratio {all_three / singles:.3f} (target <= 0.75)"
    )

    if not args.skip_rss:
        small = args.work / "rss64"
        large = args.work / "rss512"
        source = make_photos(args.work / "rss_src", 512, SIZES["1024x768"])
        for target, count in ((small, 64), (large, 512)):
            target.mkdir(parents=True, exist_ok=True)
            for p in source[:count]:
                link = target / p.name
                if not link.exists():
                    link.symlink_to(p)
        rss64 = peak_rss_mib(small, out, args.batch)
        rss512 = peak_rss_mib(large, out, args.batch)
        print(
            f"peak RSS: 64 photos {rss64:.0f} MiB, 512 photos {rss512:.0f} MiB: "
            f"{(rss512 / rss64 - 1) * 100:+.1f}% (target within 10%)"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process's own peak RSS: {own:.0f} MiB)")


if __name__ == "__main__":
    main()
