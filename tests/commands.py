"""The saliency command in a process of its own, as a user runs it; a hang fails the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: object,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """``env``: variables set for this process on top of the test's environment; ``cwd``:
    where it runs (the repository by default)."""
    command = [sys.executable, "-m", "saliency_cli", *map(str, args)]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environment
    )


def compare_evaluate_and_sanity(photos: Path, out: Path, *args: str) -> list[str]:
    """``compare`` on ``photos``, ``evaluate`` (deletion, 4 steps) and ``sanity`` on the first
    of them (each command's own tests cover many photos), with ``args`` (the methods and their
    settings), each asserted to succeed, writing under ``out``; the methods sanity judged."""
    compared = cli("compare", photos, "--out", out / "compare", *args)
    assert compared.returncode == 0, compared.stderr
    one = sorted(p for p in photos.iterdir() if p.suffix in (".jpg", ".png"))[0]
    evaluated = cli("evaluate", one, "--out", out / "evaluate", *args,
                    "--metric", "deletion", "--curve-steps", "4", "--fit", "resize")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    checked = cli("sanity", one, "--out", out / "sanity", *args, "--fit", "crop")
    assert checked.returncode == 0, checked.stderr
    verdicts = json.loads((out / "sanity" / "sanity.json").read_text())["verdicts"]
    return [v["method"] for v in verdicts]
