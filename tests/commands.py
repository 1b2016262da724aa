"""The saliency command in a process of its own, as a user runs it; a hang fails the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: object, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``env``: variables set for this process on top of the test's environment."""
    command = [sys.executable, "-m", "saliency_cli", *map(str, args)]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment
    )
