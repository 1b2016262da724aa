"""Scaling over processes: ``saliency explain`` alone and under ``torchrun`` with 2 (or more)
processes on the same photos, measured in one run.

Each figure is a marginal rate between ``--small`` and ``--count`` photos (the difference of two
runs' wall times, start-up included in both, so it cancels out), for the whole command as a user
starts it. Compared with the honest limit for the same number of processes: the bare model loop
(forward + input gradient on ready tensors, frozen parameters) in that many processes at once,
each with its share of the cores (as torchrun gives them: one thread each on this machine).

    python benchmarks/processes.py [--processes 1 2] [--count 256] [--fit resize] [--format jpg]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import bare_loop  # noqa: E402
from photos import make_photos  # noqa: E402

from saliency import load_image, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def command(processes: int, folder: Path, out: Path, args: argparse.Namespace) -> list[str]:
    explain = ["explain", str(folder), "--out", str(out), "--fit", args.fit, "--format",
               args.format, "--batch-size", str(args.batch), "--quiet"]  # fmt: skip
    if processes == 1:
        return [sys.executable, "-m", "saliency_cli", *explain]
    launch = [TORCHRUN, "--standalone", f"--nproc-per-node={processes}"]
    return [*launch, "-m", "saliency_cli", *explain]


def timed(processes: int, folder: Path, out: Path, args: argparse.Namespace) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(command(processes, folder, out, args), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    assert len(list(out.glob(f"*.{args.format}"))) == len(list(folder.iterdir()))
    return elapsed


def bare_worker(threads: int, count: int, batch_size: int, fit: str, folder: Path) -> None:
    """In a process of its own: print the seconds of ``count`` images of the bare loop."""
    torch.set_num_threads(threads)
    loaded = load_model()
    photos = [load_image(p) for p in sorted(folder.iterdir())[:batch_size]]
    batch = torch.stack([loaded.preprocess(p, fit)[0] for p in photos])
    bare_loop(loaded, batch, batch_size)  # warm-up
    print(bare_loop(loaded, batch, count))


def bare_rate(processes: int, folder: Path, args: argparse.Namespace) -> float:
    """Images/s of the bare loop in ``processes`` processes at once, the cores shared out."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    worker = [sys.executable, __file__, "--bare-worker", str(threads), "--count", str(args.count),
              "--batch", str(args.batch), "--fit", args.fit, "--folder", str(folder)]  # fmt: skip
    running = [
        subprocess.Popen(worker, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    seconds = [float(p.communicate()[0].split()[-1]) for p in running]
    return processes * args.count / max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fit", default="resize")
    parser.add_argument("--format", default="jpg")
    parser.add_argument("--bare-worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_worker(args.bare_worker, args.count, args.batch, args.fit, args.folder)
        return
    work = Path(tempfile.mkdtemp(prefix="saliency-processes-"))
    try:
        small, large = work / "small", work / "large"
        make_photos(large, args.count, (1024, 768))
        small.mkdir()
        for path in sorted(large.iterdir())[: args.small]:
            shutil.copy(path, small / path.name)
        print(f"{os.cpu_count()} CPU cores, torch {torch.__version__}, efficientnet_lite0, "
              f"{args.count} vs {args.small} photos of 1024x768, --fit {args.fit}, "
              f"--format {args.format}, batch {args.batch}")  # fmt: skip
        rates = {}
        for processes in args.processes:
            out = work / "out"
            t_small = timed(processes, small, out, args)
            t_large = timed(processes, large, out, args)
            rates[processes] = (args.count - args.small) / (t_large - t_small)
            bare = bare_rate(processes, large, args)
            print(
                f"{processes} process{'es' if processes > 1 else ''}: bare loop {bare:.1f} "
                f"images/s; explain {rates[processes]:.1f} images/s marginal ({t_small:.1f} s for "
                f"{args.small}, {t_large:.1f} s for {args.count}) = {rates[processes] / bare:.2f}x "
                "its bare loop"
                + (f", {rates[processes] / rates[1]:.2f}x one process" if 1 in rates else "")
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
