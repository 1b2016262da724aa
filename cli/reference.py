"""The commands as click objects: the documentation renders their options from these
(``docs/options_hook.py``), and the docs tests parse every command line of the site with them."""

from __future__ import annotations

import typer.main
from typer.core import TyperGroup

from .app import app

group: TyperGroup = typer.main.get_command(app)  # type: ignore[assignment]
explain = group.commands["explain"]
compare = group.commands["compare"]
sanity = group.commands["sanity"]
evaluate = group.commands["evaluate"]
report = group.commands["report"]
merge = group.commands["merge"]
models = group.commands["models"]
methods = group.commands["methods"]
