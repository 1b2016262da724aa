"""``saliency models`` and ``saliency methods``: what there is to choose from."""

from __future__ import annotations

from typing import Annotated

import typer

SMOOTH_COST = "N times the method's passes, batched: N / batch-size passes per image"


def models(
    offline: Annotated[
        bool, typer.Option(help="Only models usable without a network now.")
    ] = False,
    kinds: Annotated[
        bool, typer.Option("--kinds", help="List the kinds of model (for --kind) instead.")
    ] = False,
) -> None:
    """List models: name, source, parameters, and whether usable offline now."""
    if kinds:
        from saliency.tasks import all_kinds

        found = all_kinds()
        width = max(len(kind.name) for kind in found)
        for kind in found:
            typer.echo(f"{kind.name:{width}s}  {kind.summary}")
        return
    from saliency.models.listing import list_models

    for row in list_models(offline_only=offline):
        params = f"{row.parameters / 1e6:.1f}M" if row.parameters else "?"
        status = "offline" if row.offline else "needs download"
        typer.echo(f"{row.name:28s} {row.source:16s} {params:>8s}  {status}")


def methods() -> None:
    """List the methods, what each shows, what it costs in passes (per batch and target), and
    its settings with their defaults (give them with --set NAME=VALUE)."""
    from saliency.engine.registry import all_methods
    from saliency.engine.settings import described

    found = all_methods()
    width = max(len(method.name) for method in found)
    for method in found:
        typer.echo(f"{method.name:{width}s}  {method.summary}")
        slow = " (slow: compare leaves it out unless asked)" if method.slow else ""
        typer.echo(f"{'':{width}s}  cost: {method.cost}{slow}")
        if method.random:
            typer.echo(f"{'':{width}s}  random: drawn from --seed")
        for setting in method.all_settings:
            typer.echo(f"{'':{width}s}  --set {described(setting)}")
    typer.echo(f"{'--smooth N':{width}s}  SmoothGrad over any method (Smilkov et al. 2017)")
    typer.echo(f"{'':{width}s}  cost: {SMOOTH_COST}")
