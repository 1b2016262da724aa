"""mkdocs hook: ``<!-- options: NAME -->`` in a page becomes the table of that command's
arguments and options, read from the command itself (so the page cannot fall behind it)."""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(r"<!-- options: (\w+) -->")
RICH = re.compile(r"\[/?[a-z ]*\]")  # rich markup in the help texts: [b]...[/]


def _cell(text: str) -> str:
    return RICH.sub("", text).replace("|", "\\|").replace("\n", " ").strip()


def options_table(command: Any) -> str:
    """One row per argument and option, in the order ``--help`` shows them."""
    context = command.context_class(command, info_name=command.name)
    rows = ["| argument or option | what it does |", "|---|---|"]
    for param in command.params:
        record = param.get_help_record(context)
        if record is None or getattr(param, "hidden", False):
            continue
        name, help_text = record
        rows.append(f"| `{_cell(name)}` | {_cell(help_text)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    from saliency_cli import reference

    return MARKER.sub(lambda m: options_table(getattr(reference, m.group(1))), markdown)
