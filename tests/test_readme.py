"""The README stays a front page: at most 250 lines, the two commands that matter first, and its
Python example runs as written in a fresh interpreter (the site's examples: tests/test_docs.py)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_is_short_and_its_two_commands_come_first():
    assert len(README.splitlines()) <= 250
    first = re.search(r"```(\w+)\n(.*?)```", README, re.S)
    assert first is not None and first.group(1) == "bash"
    assert first.group(2).splitlines() == [
        'pip install -e ".[test]" && saliency explain sample_images --out heatmaps',
        "pytest",
    ]


def test_the_readme_python_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 1
    (tmp_path / "sample_images").symlink_to(ROOT / "sample_images")
    script = tmp_path / "readme_example.py"
    script.write_text(blocks[0])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Egyptian cat"
    assert (tmp_path / "cat.png").is_file()


def test_the_readme_links_point_at_files_that_exist():
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 20
    assert [link for link in links if not (ROOT / link).exists()] == []
