"""``saliency compare``: one figure per image, the photo then each method side by side."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import common, running
from .common import escape
from .options import (
    AlphaOpt,
    BaselineOpt,
    ClipOpt,
    CmapOpt,
    DebugOpt,
    DeviceOpt,
    DifferentFromOpt,
    FigureFormatOpt,
    FitOpt,
    KindOpt,
    LabelsOpt,
    LayerOpt,
    ModelOpt,
    NoiseOpt,
    PathsArg,
    QuietOpt,
    ReduceOpt,
    ReportOpt,
    SeedOpt,
    SetOpt,
    SignOpt,
    SimilarToOpt,
    SmoothOpt,
    StepsOpt,
    StyleOpt,
    TargetOpt,
    WeightsOpt,
    method_option,
)
from .report import write as write_report

if TYPE_CHECKING:
    from saliency.pictures.figures import CompareRow


def compare(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("saliency_out"),
    model: ModelOpt = "efficientnet_lite0",
    kind: KindOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: Annotated[
        list[str] | None, method_option("every method for the model but the slow ones")
    ] = None,
    target: TargetOpt = "top1",
    similar_to: SimilarToOpt = None,
    different_from: DifferentFromOpt = None,
    layer: LayerOpt = None,
    smooth: SmoothOpt = 0,
    noise: NoiseOpt = 0.15,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    baseline: BaselineOpt = None,
    settings: SetOpt = None,
    fit: FitOpt = None,
    grid: Annotated[bool, typer.Option(help="All images as rows of one figure.")] = False,
    columns: Annotated[
        int,
        typer.Option(
            min=0, help="Panels a line: an image's photo and maps wrap onto more lines past "
            "this many (0: one line each)."
        ),
    ] = 6,
    format: FigureFormatOpt = "png",
    style: StyleOpt = "overlay",
    reduce: ReduceOpt = "max",
    sign: SignOpt = "abs",
    clip_percentile: ClipOpt = 99.0,
    cmap: CmapOpt = None,
    alpha: AlphaOpt = 0.7,
    report: ReportOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One figure per image: the photo, then each method side by side (by default every method
    but those that run a forward pass per channel, window or mask: add them with --method)."""
    render_options = common.render_options(style, reduce, sign, clip_percentile, cmap, alpha)
    common.alone("compare")
    common.check_paths(paths)
    loaded = common.load(model, weights, labels, device, debug, kind=kind,
                         given=common.given(similar_to, different_from), seed=seed)
    methods = common.methods_from(method, common.quick_methods(loaded), loaded)  # its kind's
    fit_mode = common.check_fit(fit, loaded)
    target_spec = common.run_target(target, loaded, similar_to, different_from, fit_mode)
    if not target_spec.one_per_image:
        common.fail("compare shows one target per image: use top1, a class index or a class name")
    method_options = common.method_options(
        loaded, methods, {"layer": layer, "steps": steps, "baseline": baseline}, settings,
        smooth=smooth, noise=noise, seed=seed, batch_size=16,
    )  # fmt: skip
    common.check_writable(out)
    with common.hold(out, debug):  # a second run into this folder is refused at once
        from saliency.pipeline.compare import compare_rows

        found = common.collect(paths, recursive=True)
        running.say_cost(loaded, methods, method_options, len(found.files))
        console = common.stderr()
        progress = running.progress(console, quiet)
        with progress, running.passes_shown(progress):
            task = progress.add_task("comparing", total=len(found.files), unit="img")
            made = compare_rows(
                loaded, found.files, methods, target_spec, fit_mode, render_options, method_options
            )
            written, failed = _figures(made, out, str(format.value), grid, columns, progress, task)
        failed += len(found.missing)
        if not quiet:
            where = escape(str(out))
            console.print(f"{len(written)} figures, {failed} failed; outputs in {where}/")
        if report:
            write_report(out, None, None, debug)
        raise typer.Exit(common.EXIT_FAILED if failed else common.EXIT_OK)


def _figures(
    made: Iterable[tuple[Any, CompareRow | str]], out: Path, suffix: str, grid: bool,
    columns: int, progress: Any, task: Any,
) -> tuple[list[Path], int]:  # fmt: skip
    """Each image's figure written as it is made (with ``grid``, one of them all at the end),
    each failure named; the figures written and the failures."""
    from saliency.errors import UnsafePathError
    from saliency.files.confine import Confinement

    failed, rows, written = 0, [], []
    gate = Confinement(out)  # a figure's folder that is a link leading out: that image fails
    for file, row in made:
        progress.advance(task)
        if isinstance(row, str):
            failed += 1
            progress.console.print(f"[red]error:[/] {escape(file.shown)}: {escape(row)}")
            continue
        if grid:
            rows.append(row)
            continue
        try:
            path = gate.inside(f"{file.base.as_posix()}.compare.{suffix}")
        except UnsafePathError as exc:
            failed += 1
            progress.console.print(f"[red]error:[/] {escape(file.shown)}: {escape(str(exc))}")
            continue
        _save([row], path, columns)
        written.append(path)
    if grid and rows:
        path = out / f"compare.{suffix}"
        _save(rows, path, columns)
        written.append(path)
    return written, failed


def _save(rows: list[CompareRow], path: Path, columns: int) -> None:
    from saliency.pictures.figures import save_figure

    try:
        save_figure(rows, path, columns)
    except OSError as exc:
        common.fail(f"cannot write {path}: {exc.strerror or exc}", common.EXIT_FAILED)
