"""The README's Python examples run as written, in order, in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 5
    (tmp_path / "sample_images").symlink_to(ROOT / "sample_images")
    script = tmp_path / "readme_examples.py"
    script.write_text("\n".join(blocks) + "\nprint('examples ran')\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Egyptian cat" in done.stdout and "examples ran" in done.stdout
    assert (tmp_path / "cat.png").is_file() and (tmp_path / "cat.heatmap.png").is_file()


def test_every_built_in_method_has_a_row_in_the_readme_and_its_pictures_exist():
    """The three rules have a section of their own; every other method a row of the table."""
    from saliency.engine.registry import all_methods

    text = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    built_in = {m.name for m in all_methods() if type(m).__module__.startswith("saliency.")}
    assert built_in - {"gradient", "deconvnet", "guided"} <= rows, built_in - rows
    pictures = re.findall(r"!\[[^\]]*\]\((docs/[^)]+)\)", text)
    assert pictures and all((ROOT / p).is_file() for p in pictures)
