"""``saliency explain``: a picture per image, method and target, and a manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    PictureFormatOpt,
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

if TYPE_CHECKING:
    from saliency import LoadedModel
    from saliency.files.inputs import Inputs
    from saliency.pipeline.options import JobOptions


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
    overwrite: Annotated[
        bool,
        typer.Option(help="Redo every picture, and replace files at output paths not made by us."),
    ] = False,
    format: PictureFormatOpt = "png",
    quality: Annotated[
        int, typer.Option(min=1, max=100, help="Quality of jpg and webp pictures.")
    ] = 90,
    png_compression: Annotated[
        int,
        typer.Option(min=0, max=9, help="PNG zlib level: 1 is fast, 9 small (about 18% smaller)."),
    ] = 1,
    device_pipeline: Annotated[
        bool | None,
        typer.Option(
            "--device-pipeline/--cpu-pipeline",
            help="Decode JPEGs, preprocess and draw on the model's device, or with Pillow on the "
            "CPU. [default: the device for CUDA models]",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Processes that draw, encode and write (0: threads of the main process). "
            "[default: the cores the model's threads leave, at least 1]",
        ),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a saliency picture per image, method and target, and a manifest [b]results.jsonl[/].

    The input tree is mirrored under --out. A rerun keeps the pictures made from the same input
    content with the same settings and redoes the rest (everything with --overwrite). Exit codes:
    0 all done, 1 some inputs failed, 2 usage error or --out in use by another run, 130
    interrupted (Ctrl-C), 143 terminated (SIGTERM).
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
    from saliency.pipeline.drawing import Encoding
    from saliency.pipeline.options import JobOptions

    options = JobOptions(
        methods=methods,
        target=target_spec,
        fit=fit_mode,
        render=render_options,
        save_raw=save_raw,
        overwrite=overwrite,
        encoding=Encoding(str(format.value), quality, png_compression),
        resident=device_pipeline,
        method_options=method_options,
    )
    with common.hold(out, debug):  # before collecting: a second run is refused at once
        found = common.collect(paths, recursive, exclude=out)
        code = _run(loaded, found, out, options, workers, quiet, debug)
    if code > 128:
        common.exit_now(code)
    raise typer.Exit(code)


def _run(
    loaded: LoadedModel,
    found: Inputs,
    out: Path,
    options: JobOptions,
    workers: int | None,
    quiet: bool,
    debug: bool,
) -> int:
    from saliency.pipeline.job import default_writers, run_job

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
            counts["maps"] += len(outcome.rows)
        for warning in outcome.warnings:
            progress.console.print(
                f"[yellow]warning:[/] {escape(outcome.input.shown)}: {escape(warning)}"
            )
        progress.advance(task)

    try:
        with progress, common.Stopper() as stopper:
            task = progress.add_task("explaining", total=len(found.files))
            reports = run_job(
                loaded, found.files, out, options, on_image, stopper,
                writers=default_writers() if workers is None else workers,
                missing=found.missing,
            )  # fmt: skip
    except OSError as exc:
        if debug:
            raise
        common.fail(f"cannot write to {out}: {exc.strerror or exc}", common.EXIT_FAILED)
    except KeyboardInterrupt:  # a second signal: stopped at once
        console.print("[yellow]interrupted[/]")
        return common.exit_code_for(stopper.signal)

    for report in reports.values():
        message = report.warning()
        if message:
            console.print(f"[yellow]warning:[/] {escape(message)}")
    elapsed = time.perf_counter() - started
    if not quiet:
        notes = [f"{counts['done before']} already done"] if counts["done before"] else []
        if found.skipped:
            notes.append(f"{common.count(found.skipped, 'non-image file')} skipped")
        if found.special:
            kinds = "not regular files: pipes, sockets, devices or broken links"
            notes.append(f"{found.special} skipped ({kinds})")
        if found.excluded:
            folders = ", ".join(found.excluded)
            notes.append(f"output folders not read: {folders}")
        extra = "".join(f", {note}" for note in notes)
        rate = counts["images"] / elapsed if elapsed > 0 else 0.0
        console.print(
            escape(
                f"{counts['images']} images, {counts['maps']} maps, {counts['failed']} failed"
                f"{extra} in {elapsed:.1f} s ({rate:.1f} images/s); "
                f"outputs in {out}/ (manifest {out / 'results.jsonl'})"
            )
        )
    if stopper.signal is not None:
        console.print("[yellow]interrupted:[/] finished pictures are saved; rerun to complete")
        return common.exit_code_for(stopper.signal)
    return common.EXIT_FAILED if counts["failed"] else common.EXIT_OK
