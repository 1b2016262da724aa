"""The Ray Data recipe of docs/scaling.md runs as written where Ray is installed (``ray`` extra)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def recipe() -> str:
    """The page's only ``py`` block (``python`` blocks run in tests/test_docs.py)."""
    blocks = re.findall(r"```py\n(.*?)```", (ROOT / "docs" / "scaling.md").read_text(), re.S)
    assert len(blocks) == 1 and "ray.data" in blocks[0]
    return str(blocks[0])


@pytest.mark.slow
def test_the_ray_data_recipe_explains_every_photo(tmp_path: Path) -> None:
    pytest.importorskip("ray.data", reason="Ray is an optional extra: pip install -e '.[ray]'")
    (tmp_path / "sample_images").symlink_to(ROOT / "sample_images")
    (tmp_path / "recipe.py").write_text(recipe())
    done = subprocess.run(
        [sys.executable, "recipe.py"], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(line for line in done.stdout.splitlines() if ".jpg" in line)
    assert [line.split()[0] for line in lines] == sorted(
        p.name for p in (ROOT / "sample_images").glob("*.jpg")
    )
    assert "coffee.jpg espresso (224, 224)" in lines
