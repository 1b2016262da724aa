"""What 'nothing lost' means for an output folder, checked after every run in the rerun tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def manifest_rows(out: Path) -> list[dict[str, Any]]:
    """The manifest, parsed line by line (each line must be one JSON object)."""
    rows = []
    for number, line in enumerate((out / "results.jsonl").read_text().splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict), f"line {number} is not an object"
        rows.append(row)
    return rows


def check_nothing_lost(out: Path) -> list[dict[str, Any]]:
    """Every ok row's outputs exist and decode, no partial file anywhere, one row per picture
    (or per failed image, or per image and method that found nothing to explain), and the
    manifest parses line by line. Returns the rows."""
    rows = manifest_rows(out)
    assert not list(out.rglob("*.part")), "a partial file was left"
    keys = [
        r["outputs"][0] if r["outputs"] else (r["image"], r["status"] == "ok" and r["method"])
        for r in rows
    ]
    assert len(keys) == len(set(keys)), "two rows for one picture"
    for row in rows:
        if row["status"] != "ok":
            assert row["error"] and not row["outputs"]
            continue
        if not row["outputs"]:  # nothing found: it says so
            assert row["found"] == [] and row["note"]
        for name in row["outputs"]:
            path = out / name
            if name.endswith((".png", ".jpg", ".webp")):
                with Image.open(path) as picture:
                    picture.load()
            elif name.endswith(".npy"):
                np.load(path)
            else:
                json.loads(path.read_text())
    return rows
