"""``saliency explain``: a picture per image, method and target, and a manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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
    FitOpt,
    KindOpt,
    LabelsOpt,
    LayerOpt,
    MaxDetectionsOpt,
    MethodOpt,
    MinScoreOpt,
    ModelOpt,
    NoiseOpt,
    PathsArg,
    PerBoxOpt,
    PictureFormatOpt,
    QuietOpt,
    RawFormat,
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
    TunedPassOpt,
    WeightsOpt,
)
from .placement import Placement, placement
from .report import write as write_report

if TYPE_CHECKING:
    from saliency import LoadedModel
    from saliency.files.inputs import Inputs
    from saliency.pipeline.options import JobOptions


def explain(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("saliency_out"),
    model: ModelOpt = "efficientnet_lite0",
    kind: KindOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: MethodOpt = None,
    target: TargetOpt = "top1",
    similar_to: SimilarToOpt = None,
    different_from: DifferentFromOpt = None,
    min_score: MinScoreOpt = None,
    max_detections: MaxDetectionsOpt = None,
    per_box_normalize: PerBoxOpt = False,
    layer: LayerOpt = None,
    smooth: SmoothOpt = 0,
    noise: NoiseOpt = 0.15,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    baseline: BaselineOpt = None,
    settings: SetOpt = None,
    fit: FitOpt = None,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Inputs per pass (images, noisy copies, path points, or masked and occluded "
            "copies)."
        ),
    ] = 16,
    recursive: Annotated[bool, typer.Option(help="Descend into subfolders.")] = True,
    style: StyleOpt = "overlay",
    reduce: ReduceOpt = "max",
    sign: SignOpt = "abs",
    clip_percentile: ClipOpt = 99.0,
    cmap: CmapOpt = None,
    alpha: AlphaOpt = 0.7,
    save_raw: Annotated[
        bool, typer.Option(help="Also save each map as float32 (model resolution) + geometry.")
    ] = False,
    raw_format: Annotated[
        RawFormat,
        typer.Option(
            help="With --save-raw: a .npy per map, or safetensors containers of many maps "
            "(for millions of images; read with saliency.read_maps)."
        ),
    ] = "npy",
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
    tuned_pass: TunedPassOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Processes that draw, encode and write (0: threads of the main process). "
            "[default: the cores the model's threads leave, at least 1]",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Explain only shard I of N (e.g. 0/4) of the inputs, for job arrays; set from "
            "SLURM_ARRAY_TASK_ID/COUNT when those are. Under torchrun each rank takes its own.",
            show_default=False,
        ),
    ] = None,
    report: ReportOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a saliency picture per image, method and target, and a manifest [b]results.jsonl[/].

    The input tree is mirrored under --out. A rerun keeps the pictures made from the same input
    content with the same settings and redoes the rest (everything with --overwrite). Exit codes:
    0 all done, 1 some inputs failed, 2 usage error or --out in use by another run, 130
    interrupted (Ctrl-C), 143 terminated (SIGTERM). Run it under torchrun, or as a job array with
    --shard, to spread the inputs over processes, GPUs and machines.
    """
    if batch_size < 1:
        common.fail(f"--batch-size must be at least 1, got {batch_size}")
    render_options = common.render_options(style, reduce, sign, clip_percentile, cmap, alpha)
    place = placement(shard, debug)
    common.check_paths(paths)
    loaded = common.load(model, weights, labels, device, debug, place.group, kind,
                         common.given(similar_to, different_from), seed)
    methods = common.methods_from(method, loaded=loaded)  # all: the methods for its kind
    fit_mode = common.check_fit(fit, loaded)
    detections = (min_score, max_detections, per_box_normalize)
    target_spec = common.run_target(
        target, loaded, similar_to, different_from, fit_mode, detections
    )
    if device_pipeline and not loaded.kind.device_pipeline:
        common.fail(f"a {loaded.kind.name} model's pictures are drawn on the CPU: drop "
                    "--device-pipeline")  # fmt: skip
    common.check_tuned(tuned_pass, loaded, methods)
    method_options = common.method_options(
        loaded, methods, {"layer": layer, "steps": steps, "baseline": baseline}, settings,
        smooth=smooth, noise=noise, seed=seed, batch_size=batch_size,
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
        raw_format=str(raw_format.value),
        overwrite=overwrite,
        encoding=Encoding(str(format.value), quality, png_compression),
        resident=device_pipeline,
        tuned=tuned_pass,
        method_options=method_options,
    )
    with common.hold(out, debug, place.shard):  # before collecting: refused at once if busy
        found = place.collect(paths, recursive, out)
        if place.leader and not quiet:
            running.say_cost(loaded, methods, method_options, len(found.files), target_spec.each)
        code, counts = _run(loaded, found, out, options, workers, quiet or not place.leader,
                            debug, place)  # fmt: skip
    if code > 128:
        running.exit_now(code)
    code, complete = _finish(found, out, counts, code, quiet, place)
    place.close()
    if report and complete:  # a shard that did not merge leaves the report to the last
        write_report(out, None, None, debug)
    raise typer.Exit(code)


def _run(
    loaded: LoadedModel,
    found: Inputs,
    out: Path,
    options: JobOptions,
    workers: int | None,
    quiet: bool,
    debug: bool,
    place: Placement,
) -> tuple[int, dict[str, float]]:
    """Explain this process's share; its exit code and counts."""
    from saliency.errors import UnsafePathError
    from saliency.pipeline.job import default_writers, run_job

    console = common.stderr()
    counts: dict[str, float] = {"images": 0, "maps": 0, "failed": 0, "done before": 0}
    started = time.perf_counter()
    progress = running.progress(console, quiet)
    prefix = f"[dim]shard {place.shard}:[/] " if place.shard is not None else ""

    def on_image(outcome: Any) -> None:
        if outcome.done:
            counts["done before"] += 1
        elif outcome.error:
            counts["failed"] += 1
            progress.console.print(
                f"{prefix}[red]error:[/] {escape(outcome.input.shown)}: {escape(outcome.error)}"
            )
        else:
            counts["images"] += 1
            counts["maps"] += sum(1 for row in outcome.rows if row.outputs)
        for warning in outcome.warnings:
            progress.console.print(
                f"{prefix}[yellow]warning:[/] {escape(outcome.input.shown)}: {escape(warning)}"
            )
        progress.update(task, completed=place.advance())

    try:
        with progress, running.Stopper() as stopper, running.passes_shown(progress):
            task = progress.add_task("explaining", total=len(found.files))
            reports = run_job(
                loaded, found.files, out, options, on_image, stopper,
                writers=default_writers(loaded.device) if workers is None else workers,
                missing=found.missing, shard=place.shard, locked=True,
            )  # fmt: skip
            place.wait_for_others(lambda done: progress.update(task, completed=done), stopper)
    except (OSError, UnsafePathError) as exc:
        if debug:
            raise
        _stopped(out, exc)
    except KeyboardInterrupt:  # a second signal: stopped at once
        console.print("[yellow]interrupted[/]")
        return running.exit_code_for(stopper.signal), counts

    if place.leader:
        for report in reports.values():
            message = report.warning()
            if message:
                console.print(f"[yellow]warning:[/] {escape(message)}")
    counts["seconds"] = time.perf_counter() - started
    if stopper.signal is not None:
        console.print(
            f"{prefix}[yellow]interrupted:[/] finished pictures are saved; rerun to complete"
        )
        return running.exit_code_for(stopper.signal), counts
    return (common.EXIT_FAILED if counts["failed"] else common.EXIT_OK), counts


def _stopped(out: Path, exc: Exception) -> NoReturn:
    """A run stopped by its folder: a file of the folder's own that is a link (a usage error:
    nothing was done), or a write that failed (the pictures finished are kept)."""
    if not isinstance(exc, OSError):
        common.fail(str(exc))
    common.fail(
        f"cannot write to {out}: {exc.strerror or exc}; the run stopped, and the pictures "
        "it finished are kept (rerun to complete)",
        common.EXIT_FAILED,
    )


def _finish(
    found: Inputs,
    out: Path,
    counts: dict[str, float],
    code: int,
    quiet: bool,
    place: Placement,
) -> tuple[int, bool]:
    """Sum the processes' counts, merge their manifests (rank 0 of a group; a shard if it
    finished last) and print the summary; the exit code, and whether this process holds the
    whole result (alone, or merged)."""
    every = place.gather(counts)
    merged = place.merge(out)
    if not place.leader:  # rank 0 reports failed inputs, for all; exiting 1 here would make
        return (common.EXIT_OK if code == common.EXIT_FAILED else code), False  # torchrun stop 0
    total = {key: sum(c.get(key, 0) for c in every) for key in counts}
    code = max(code, common.EXIT_FAILED if total["failed"] else common.EXIT_OK)
    complete = place.shard is None or merged is not None
    if quiet:
        return code, complete
    notes = [f"{int(total['done before'])} already done"] if total["done before"] else []
    if found.skipped:
        notes.append(f"{common.count(found.skipped, 'non-image file')} skipped")
    if found.special:
        kinds = "not regular files: pipes, sockets, devices or broken links"
        notes.append(f"{found.special} skipped ({kinds})")
    if found.excluded:
        notes.append(f"output folders not read: {', '.join(found.excluded)}")
    extra = "".join(f", {note}" for note in notes)
    elapsed = max(c.get("seconds", 0.0) for c in every)
    rate = total["images"] / elapsed if elapsed > 0 else 0.0
    who = place.describe(len(every))
    manifest = out / "results.jsonl"
    if place.shard is not None and merged is None:
        manifest_note = (
            f"manifest part in {out}/; run `saliency merge {out}` once every shard is done"
        )
    else:
        manifest_note = f"manifest {manifest}"
    common.stderr().print(
        escape(
            f"{who}{common.count(int(total['images']), 'image')} done, "
            f"{common.count(int(total['maps']), 'map')} written, "
            f"{common.count(int(total['failed']), 'input')} failed{extra} in {elapsed:.1f} s "
            f"({rate:.1f} images/s); outputs in {out}/ ({manifest_note})"
        )
    )
    return code, complete
