"""Does memory grow over a long run? The device-resident path over ``--count`` photos (10,000 by
default), with the device's allocated memory (CUDA) and the process's resident memory sampled
every ``--every`` images; growth is measured from the first sample (after warm-up) to the last.

    python benchmarks/memory_growth.py --device cuda [--count 10000 --every 1000]
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

from saliency import load_model  # noqa: E402
from saliency.engine.options import MethodOptions  # noqa: E402
from saliency.files.inputs import collect_inputs  # noqa: E402
from saliency.pipeline.drawing import Encoding  # noqa: E402
from saliency.pipeline.job import run_job  # noqa: E402
from saliency.pipeline.options import JobOptions  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=200, help="distinct photos, copied over")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "saliency-mem")
    args = parser.parse_args()

    loaded = load_model(device=args.device)
    photos = make_photos(args.work / "photos", args.distinct, (1024, 768))
    folder = args.work / f"many{args.count}"
    folder.mkdir(parents=True, exist_ok=True)
    contents = [p.read_bytes() for p in photos]
    for i in range(args.count):  # copies, not links: a file reached twice is explained once
        copy = folder / f"p{i:06d}.jpg"
        if not copy.exists():
            copy.write_bytes(contents[i % len(contents)])
    options = JobOptions(
        methods=("guided",), fit="resize", encoding=Encoding("jpg"), resident=True,
        method_options=MethodOptions(batch_size=args.batch),
    )  # fmt: skip
    cuda = loaded.device.type == "cuda"
    samples: list[tuple[int, float, float]] = []
    done = 0

    failed: list[str] = []

    def on_image(outcome) -> None:
        nonlocal done
        done += 1
        if outcome.error:
            failed.append(f"{outcome.input.path.name}: {outcome.error}")
        if done % args.every == 0:
            allocated = torch.cuda.memory_allocated() / 2**20 if cuda else float("nan")
            samples.append((done, allocated, rss_mib()))

    start = time.perf_counter()
    run_job(loaded, collect_inputs([str(folder)]).files, args.work / "out", options,
            on_image=on_image)  # fmt: skip
    elapsed = time.perf_counter() - start
    if failed:  # a run that fails fast would hold no memory to measure
        raise SystemExit(f"{len(failed)} of {args.count} photos failed, e.g. {failed[0]}")
    where = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{args.count} photos on {where} in {elapsed:.0f} s ({args.count / elapsed:.0f}/s)")
    print("  images   device MiB allocated   process RSS MiB")
    for count, allocated, rss in samples:
        print(f"  {count:6d}   {allocated:20.1f}   {rss:15.0f}")
    if len(samples) >= 2:
        (_, a0, r0), (_, a1, r1) = samples[0], samples[-1]
        growth = f"device {a1 - a0:+.1f} MiB, " if cuda else ""
        first, last = samples[0][0], samples[-1][0]
        print(f"growth from {first} to {last} images: {growth}RSS {r1 - r0:+.0f} MiB")


if __name__ == "__main__":
    main()
