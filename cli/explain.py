"""``saliency explain``: a picture per image, method and target, and a manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from . import common
from .common import escape
from .options import (
    AlphaOpt,
    BaselineOpt,
    ClipOpt,
    CmapOpt,
    DebugOpt,
    DeviceOpt,
    FitOpt,
    LabelsOpt,
    LayerOpt,
    MethodOpt,
    ModelOpt,
    NoiseOpt,
    PathsArg,
    QuietOpt,
    ReduceOpt,
    SeedOpt,
    SignOpt,
    SmoothOpt,
    StepsOpt,
    StyleOpt,
    TargetOpt,
    WeightsOpt,
)


def explain(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("saliency_out"),
    model: ModelOpt = "efficientnet_lite0",
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: MethodOpt = None,
    target: TargetOpt = "top1",
    layer: LayerOpt = None,
    smooth: SmoothOpt = 0,
    noise: NoiseOpt = 0.15,
    seed: SeedOpt = 0,
    steps: StepsOpt = 32,
    baseline: BaselineOpt = "black",
    fit: FitOpt = None,
    batch_size: Annotated[
        int, typer.Option(help="Inputs per pass (images, noisy copies or path points).")
    ] = 16,
    recursive: Annotated[bool, typer.Option(help="Descend into subfolders.")] = True,
    style: StyleOpt = "overlay",
    reduce: ReduceOpt = "max",
    sign: SignOpt = "abs",
    clip_percentile: ClipOpt = 99.0,
    cmap: CmapOpt = None,
    alpha: AlphaOpt = 0.7,
    save_raw: Annotated[
        bool, typer.Option(help="Also save each map as float32 .npy (model resolution) + geometry.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Redo and replace existing outputs.")] = False,
    png_compression: Annotated[
        int,
        typer.Option(min=0, max=9, help="PNG zlib level: 1 is fast, 9 small (about 18% smaller)."),
    ] = 1,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a saliency picture per image, method and target, and a manifest [b]results.jsonl[/].

    The input tree is mirrored under --out. Existing outputs are kept (a rerun completes what is
    missing) unless --overwrite. Exit codes: 0 all done, 1 some inputs failed, 2 usage error,
    130 interrupted.
    """
    if batch_size < 1:
        common.fail(f"--batch-size must be at least 1, got {batch_size}")
    methods = common.methods_from(method)
    render_options = common.render_options(style, reduce, sign, clip_percentile, cmap, alpha)
    loaded = common.load(model, weights, labels, device, debug)
    fit_mode = common.check_fit(fit, loaded)
    target_spec = common.target(target, loaded.categories)
    method_options = common.method_options(
        loaded, methods, baseline, layer=layer, smooth=smooth, noise=noise, seed=seed,
        steps=steps, batch_size=batch_size,
    )  # fmt: skip
    common.check_writable(out)

    from saliency.pipeline.job import record_missing, run_job
    from saliency.pipeline.options import JobOptions

    found = common.collect(paths, recursive)
    options = JobOptions(
        methods=methods,
        target=target_spec,
        fit=fit_mode,
        render=render_options,
        save_raw=save_raw,
        overwrite=overwrite,
        png_compression=png_compression,
        method_options=method_options,
    )
    console = common.stderr()
    counts = {"images": 0, "maps": 0, "failed": len(found.missing), "done before": 0}
    started = time.perf_counter()
    progress = common.progress(console, quiet)

    def on_image(outcome: Any) -> None:
        if outcome.done:
            counts["done before"] += 1
        elif outcome.error:
            counts["failed"] += 1
            progress.console.print(
                f"[red]error:[/] {escape(outcome.input.shown)}: {escape(outcome.error)}"
            )
        else:
            counts["images"] += 1
            counts["maps"] += sum(row["status"] == "ok" for row in outcome.rows)
        for warning in outcome.warnings:
            progress.console.print(
                f"[yellow]warning:[/] {escape(outcome.input.shown)}: {escape(warning)}"
            )
        progress.advance(task)

    try:
        with progress, common.Stopper() as stopper:
            task = progress.add_task("explaining", total=len(found.files))
            reports = run_job(loaded, found.files, out, options, on_image, stopper)
        record_missing(out, loaded.name, found.missing)  # after: --overwrite starts afresh
    except OSError as exc:
        if debug:
            raise
        common.fail(f"cannot write to {out}: {exc.strerror or exc}", common.EXIT_FAILED)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(common.EXIT_INTERRUPTED) from None

    for report in reports.values():
        message = report.warning()
        if message:
            console.print(f"[yellow]warning:[/] {escape(message)}")
    elapsed = time.perf_counter() - started
    if not quiet:
        extra = f", {counts['done before']} already done" if counts["done before"] else ""
        skipped = f", {found.skipped} non-image files skipped" if found.skipped else ""
        rate = counts["images"] / elapsed if elapsed > 0 else 0.0
        console.print(
            f"{counts['images']} images, {counts['maps']} maps, {counts['failed']} failed"
            f"{extra}{skipped} in {elapsed:.1f} s ({rate:.1f} images/s); "
            f"outputs in {escape(str(out))}/ (manifest {escape(str(out / 'results.jsonl'))})"
        )
    if stopper.signal is not None:
        console.print("[yellow]interrupted:[/] finished items are saved; rerun to complete")
        raise typer.Exit(common.EXIT_INTERRUPTED)
    raise typer.Exit(common.EXIT_FAILED if counts["failed"] else common.EXIT_OK)
