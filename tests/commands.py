"""The saliency command in a process of its own, as a user runs it; a hang fails the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "saliency_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
