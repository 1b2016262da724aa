"""The ``saliency`` command: the Typer app and its commands, one module each.

Commands parse options, call the library and report; torch, torchvision, timm and matplotlib are
imported only once a command starts working, so ``saliency --help`` answers at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from saliency.engine.registry import method_names

from .common import EXIT_INTERRUPTED
from .compare import compare
from .evaluate import evaluate
from .explain import explain
from .help import Command, Group
from .listing import methods, models
from .merge import merge
from .report import report
from .sanity import sanity

app = typer.Typer(
    name="saliency",
    cls=Group,
    help="Saliency maps that explain vision models: classifiers, multi-label classifiers, "
    "segmentation models, detectors and embeddings, from one photo to folders of thousands. "
    f"{len(method_names())} methods: the gradient rules (Gradients, DeconvNet, Guided Backprop), "
    "the CAM family (Grad-CAM and its kin), path and noise methods (Integrated Gradients, "
    "SmoothGrad), perturbation (Occlusion, RISE, D-RISE), LRP, and attention rollout "
    "(transformers); 'saliency methods' lists "
    "them. Start with: saliency explain PHOTOS --out DIR",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is ours (.help); errors plain, as ours are
    context_settings={"help_option_names": ["-h", "--help"]},
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
    """Saliency maps that explain vision models (see [b]saliency methods[/])."""


for command in (explain, compare, sanity, evaluate, report, merge, models, methods):
    app.command(cls=Command)(command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
