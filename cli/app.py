"""The ``saliency`` command: the Typer app and its commands, one module each.

Commands parse options, call the library and report; torch, torchvision, timm and matplotlib are
imported only once a command starts working, so ``saliency --help`` answers at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .common import EXIT_INTERRUPTED
from .compare import compare
from .evaluate import evaluate
from .explain import explain
from .listing import methods, models
from .merge import merge
from .report import report
from .sanity import sanity

app = typer.Typer(
    name="saliency",
    help="Saliency maps for CNN classifiers: Gradients, DeconvNet, Guided Backprop, Grad-CAM, "
    "Guided Grad-CAM, Integrated Gradients, Gradient x Input, and SmoothGrad over any of them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"saliency {version('cnn-saliency')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Saliency maps for CNN classifiers (see [b]saliency methods[/])."""


for command in (explain, compare, sanity, evaluate, report, merge, models, methods):
    app.command()(command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
