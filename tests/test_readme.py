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
