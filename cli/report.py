"""``saliency report``: a static HTML page of an output folder, with thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import common
from .options import DebugOpt

OutArg = Annotated[Path, typer.Argument(help="An output folder of explain, compare or sanity.")]


def report(
    out: OutArg,
    inputs_from: Annotated[
        Path | None,
        typer.Option(
            help="Where the run was started, for photos moved since: each is looked for where "
            "the run read it, then by its name in the manifest under this folder.",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="The page's title. [default: the folder]")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write OUT/report.html: a static page to look at a run in a browser.

    A card per image (photo, pictures, top-5, errors), filters, search, a full-size view; the
    sanity check and evaluation where OUT holds them. Opens from file://, no server or network
    needed; thumbnails go to OUT/thumbs/ and are remade only when stale."""
    write(out, inputs_from, title, debug)


def write(out: Path, inputs_from: Path | None, title: str | None, debug: bool) -> None:
    """Write the report and say where (also for --report on the other commands)."""
    from saliency.report.page import write_report

    with common.failures(out, debug, "write the report in", usage=(FileNotFoundError,)):
        written = write_report(out, inputs_from, title)
    common.stderr().print(
        common.escape(
            f"report: {written.path} ({common.count(written.cards, 'image')}, "
            f"{written.failed} failed, {common.count(written.thumbnails, 'thumbnail')})"
        )
    )
    if written.unfound:
        first = ", ".join(written.unfound[:3]) + (", ..." if len(written.unfound) > 3 else "")
        common.stderr().print(
            common.escape(
                f"note: {common.count(len(written.unfound), 'photo')} not found where the run "
                f"read them, or changed since ({first}): their cards show no photo. Give "
                "--inputs-from DIR with the folder the run was started in, if they moved."
            )
        )
