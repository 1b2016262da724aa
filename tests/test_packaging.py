"""What a wheel ships: every package of the library and the report's template files."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_and_template_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "saliency").rglob("__init__.py")
    }
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
    templates = {p.name for p in (ROOT / "saliency" / "report" / "template").iterdir()}
    assert {"report.html.j2", "report.css", "report.js"} <= templates
    assert config["package-data"]["saliency.report"] == ["template/*"]


def test_the_types_ship_with_the_library() -> None:
    """PEP 561: the marker beside the package, listed for the wheel, so users' checkers read it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert (ROOT / "saliency" / "py.typed").is_file()
    assert config["package-data"]["saliency"] == ["py.typed"]
