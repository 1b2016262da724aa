"""Every command's outputs, for every kind of model, compared between two source trees.

A refactoring must not change one pixel or one manifest key. ``record TREE OUT`` runs a fixed set
of commands (classification with several option sets, segmentation default and ``--target``,
detection with ``--min-score`` and per-box normalisation, ``--similar-to``, ``compare``,
``sanity``, ``evaluate`` and ``report``) with ``TREE``'s code, on the sample photos and seeded
random checkpoints, into ``OUT``; ``diff OLD NEW`` compares two such folders pixel for pixel
(pictures decoded) and key for key (manifest rows and the JSON and CSV that commands write).

    git worktree add /tmp/base <commit>
    python benchmarks/unchanged.py record /tmp/base /tmp/old
    python benchmarks/unchanged.py record . /tmp/new
    python benchmarks/unchanged.py diff /tmp/old /tmp/new

The script runs from this checkout (its checkpoints come from the tests' recipes); each tree's
code runs in a process of its own, its ``saliency`` and ``cli`` first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent.parent
SAMPLES = HERE / "sample_images"
PICTURES = {".png", ".jpg", ".jpeg", ".webp"}
# keys that say when or how fast, not what
VOLATILE = {"seconds", "elapsed", "created", "time", "started", "finished", "rate", "duration"}


def checkpoints(folder: Path) -> dict[str, Path]:
    """The tests' seeded segmentation and detection checkpoints, made once per folder."""
    import torch
    import torchvision

    sys.path.insert(0, str(HERE))
    from tests.test_beyond_classifiers import calibrated
    from tests.test_detection_runs import _pixels

    folder.mkdir(parents=True, exist_ok=True)
    made = {"seg": folder / "seg.pth", "det": folder / "det.pth"}
    if not made["seg"].exists():
        torch.manual_seed(0)
        seg = torchvision.models.get_model(
            "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None
        )
        torch.save(calibrated(seg).state_dict(), made["seg"])
    if not made["det"].exists():
        torch.manual_seed(0)
        net = torchvision.models.get_model(
            "fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None
        )
        names = ("astronaut.jpg", "coffee.jpg", "chelsea.png", "grace_hopper.jpg", "rocket.jpg")
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        net.train()
        with torch.no_grad():
            net.backbone(net.transform([_pixels(n, (320, 320)) for n in names])[0].tensors)
            head = net.roi_heads.box_predictor.cls_score
            head.weight.mul_(30)
            head.bias[1] += 4.0
            head.bias[18] += 3.5
        torch.save(net.eval().state_dict(), made["det"])
    return made


def runs(photos: Path, weights: dict[str, Path]) -> dict[str, list[str]]:
    """Each run's name and its command line after ``saliency``."""
    seg = ["--model", "lraspp_mobilenet_v3_large", "--weights", str(weights["seg"])]
    det = ["--model", "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", str(weights["det"])]
    two = [str(photos / "chelsea.png"), str(photos / "coffee.jpg")]
    one = [str(photos / "chelsea.png")]
    return {
        "cls_topk": ["explain", str(photos), "--method", "guided", "--method", "gradcam",
                     "--target", "topk:2", "--save-raw"],
        "cls_class": ["explain", *two, "--method", "gradient", "--method",
                      "integrated_gradients", "--steps", "4", "--target", "281", "--smooth", "2",
                      "--style", "heatmap", "--fit", "crop", "--format", "jpg"],
        "cls_lrp": ["explain", *one, "--method", "lrp_epsilon_plus_flat", "--method", "deconvnet",
                    "--sign", "positive", "--reduce", "sum", "--plain-pass"],
        "cls_compare": ["compare", *two, "--method", "guided", "--method", "gradcam", "--grid"],
        "cls_sanity": ["sanity", *one, "--method", "gradient", "--method", "gradcam"],
        "cls_evaluate": ["evaluate", *one, "--method", "gradcam", "--curve-steps", "4",
                         "--fit", "resize"],
        "seg_default": ["explain", *two, *seg, "--method", "gradcam", "--method", "gradient",
                        "--fit", "resize"],
        "seg_target": ["explain", *two, *seg, "--method", "gradcam", "--target", "8",
                       "--fit", "resize"],
        "seg_compare": ["compare", *one, *seg, "--method", "gradcam", "--fit", "resize"],
        "seg_evaluate": ["evaluate", *one, *seg, "--method", "gradcam", "--curve-steps", "4",
                         "--fit", "resize", "--metric", "deletion"],
        "det_default": ["explain", str(photos), *det, "--method", "gradcam", "--method",
                        "guided", "--max-detections", "3"],
        "det_low": ["explain", *two, *det, "--method", "gradcam", "--min-score", "0.3",
                    "--max-detections", "2", "--per-box-normalize"],
        "det_compare": ["compare", *two, *det, "--method", "gradcam"],
        "det_evaluate": ["evaluate", *one[:0], str(photos / "astronaut.jpg"), *det, "--method",
                         "gradcam", "--steps", "4", "--metric", "deletion", "--metric",
                         "pointing_game"],
        "emb_similar": ["explain", *two, "--similar-to", str(photos / "grace_hopper.jpg"),
                        "--method", "gradcam", "--method", "gradient"],
        "emb_compare": ["compare", *one, "--different-from", str(photos / "rocket.jpg"),
                        "--method", "gradcam"],
    }  # fmt: skip


def record(tree: Path, out: Path, only: list[str]) -> None:
    """Run every command with ``tree``'s code into ``out``; a report of each explain run."""
    out.mkdir(parents=True, exist_ok=True)
    weights = checkpoints(out.parent / "checkpoints")
    path = Path(tempfile.mkdtemp())  # the tree's packages first on the path, by their names
    (path / "saliency").symlink_to(tree.resolve() / "saliency")
    (path / "saliency_cli").symlink_to(tree.resolve() / "cli")
    env = {**os.environ, "PYTHONPATH": str(path)}
    work = out / "work"
    work.mkdir(exist_ok=True)
    photos = work / "photos"  # named alike in both records (rows name them relative to work)
    if not photos.exists():
        shutil.copytree(SAMPLES, photos, ignore=shutil.ignore_patterns("*.md"))
    main = "from saliency_cli.app import main; main()"
    for name, args in runs(Path("photos"), weights).items():
        if only and name not in only:
            continue
        target = Path(name)
        shutil.rmtree(work / target, ignore_errors=True)
        line = [sys.executable, "-c", main, *args, "--out", str(target), "--quiet"]
        done = subprocess.run(line, cwd=work, env=env, capture_output=True, text=True)
        (work / f"{name}.exit").write_text(f"{done.returncode}\n")
        print(f"{name}: exit {done.returncode}", flush=True)
        if done.returncode not in (0,) and done.stderr:
            print(done.stderr[-2000:], flush=True)
        if args[0] == "explain":
            report = [sys.executable, "-c", main, "report", str(target)]
            subprocess.run(report, cwd=work, env=env, capture_output=True, text=True)


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _same(old: Path, new: Path) -> str | None:
    """None if the two files hold the same content as this file's kind is read, else why not."""
    suffix = old.suffix.lower()
    if suffix in PICTURES:
        a, b = np.asarray(Image.open(old)), np.asarray(Image.open(new))
        if a.shape != b.shape:
            return f"shape {a.shape} != {b.shape}"
        differ = int((a != b).sum())
        most = np.abs(a.astype(int) - b).max()
        return None if differ == 0 else f"{differ} values differ (by {most} at most)"
    if suffix == ".jsonl":
        a_rows, b_rows = _strip(_rows(old)), _strip(_rows(new))
        return None if a_rows == b_rows else _first_difference(a_rows, b_rows)
    if suffix == ".json":
        a_json = _strip(json.loads(old.read_text()))
        b_json = _strip(json.loads(new.read_text()))
        return None if a_json == b_json else "JSON differs"
    if suffix == ".npy":
        return None if np.array_equal(np.load(old), np.load(new)) else "array differs"
    if suffix in (".html", ".lock") or old.name.startswith("."):
        return None  # the report embeds when it was made; its cards are the rows compared
    return None if old.read_bytes() == new.read_bytes() else "bytes differ"


def _first_difference(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows != {len(b)} rows"
    for x, y in zip(a, b, strict=True):
        if x != y:
            keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            were, are = [x.get(k) for k in keys], [y.get(k) for k in keys]
            return f"row differs in {keys}: {were} != {are}"
    return "rows differ"


def diff(old: Path, new: Path) -> int:
    """Print each difference; the number of differences."""
    a = {p.relative_to(old) for p in (old / "work").rglob("*") if p.is_file()}
    b = {p.relative_to(new) for p in (new / "work").rglob("*") if p.is_file()}
    problems = [f"only in {old}: {p}" for p in sorted(a - b)]
    problems += [f"only in {new}: {p}" for p in sorted(b - a)]
    compared = 0
    for path in sorted(a & b):
        why = _same(old / path, new / path)
        compared += 1
        if why is not None:
            problems.append(f"{path}: {why}")
    for line in problems:
        print(line)
    print(f"{compared} files compared, {len(problems)} differences")
    return len(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("tree", type=Path)
    rec.add_argument("out", type=Path)
    rec.add_argument("--only", nargs="*", default=[])
    dif = sub.add_parser("diff")
    dif.add_argument("old", type=Path)
    dif.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.tree, args.out, args.only)
    else:
        sys.exit(1 if diff(args.old, args.new) else 0)


if __name__ == "__main__":
    main()
