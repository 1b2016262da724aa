"""``saliency sanity``: the model-randomization sanity check, its CSV, figures and verdicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from . import common, running
from .common import count, escape
from .options import (
    BaselineOpt,
    DebugOpt,
    DeviceOpt,
    DifferentFromOpt,
    FigureFormatOpt,
    FitOpt,
    Granularity,
    KindOpt,
    LabelsOpt,
    LayerOpt,
    Mode,
    ModelOpt,
    NoiseOpt,
    PathsArg,
    QuietOpt,
    ReportOpt,
    SetOpt,
    SimilarToOpt,
    SmoothOpt,
    StepsOpt,
    TargetOpt,
    WeightsOpt,
    method_option,
)
from .report import write as write_report

DEFAULT_METHODS = ("gradient", "guided", "gradcam", "guided_gradcam")


def sanity(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("sanity_out"),
    model: ModelOpt = "efficientnet_lite0",
    kind: KindOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: Annotated[
        list[str] | None, method_option("gradient, guided, gradcam, guided_gradcam")
    ] = None,
    target: TargetOpt = "top1",
    similar_to: SimilarToOpt = None,
    different_from: DifferentFromOpt = None,
    mode: Annotated[
        Mode,
        typer.Option(
            help="cascading: randomize from the logits down, keeping earlier steps; "
            "independent: one step at a time, the rest original."
        ),
    ] = "cascading",
    granularity: Annotated[
        Granularity,
        typer.Option(help="A step per stage (top-level block) or per layer (conv, linear, norm)."),
    ] = "stage",
    seed: Annotated[
        int, typer.Option(help="Seed of the re-initialization (and of SmoothGrad and RISE).")
    ] = 0,
    repredict: Annotated[
        bool,
        typer.Option(
            help="Explain each randomized model's own top-1 class, not the original prediction."
        ),
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(
            help="A method passes when its mean rank correlation of |map| with the original, "
            "after full randomization, is below this."
        ),
    ] = 0.3,
    layer: LayerOpt = None,
    smooth: SmoothOpt = 0,
    noise: NoiseOpt = 0.15,
    steps: StepsOpt = None,
    baseline: BaselineOpt = None,
    settings: SetOpt = None,
    fit: FitOpt = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per pass.")] = 16,
    format: FigureFormatOpt = "png",
    report: ReportOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Model-randomization sanity check (Adebayo et al. 2018): do the maps depend on the model?

    Randomizes a copy of the model step by step from the logits down and compares each method's
    maps with the original model's. Writes [b]sanity.csv[/] (image, method, step, layer, metric,
    value), [b]sanity.png[/] (each metric against the randomized steps) and a strip of maps per
    image under [b]strips/[/], and prints which methods pass.
    """
    if batch_size < 1:
        common.fail(f"--batch-size must be at least 1, got {batch_size}")
    if not 0.0 < threshold <= 1.0:
        common.fail(f"--threshold must be in (0, 1], got {threshold}")
    common.alone("sanity")
    common.check_paths(paths)
    loaded = common.load(model, weights, labels, device, debug, kind=kind,
                         given=common.given(similar_to, different_from), seed=seed)
    methods = common.methods_from(method, DEFAULT_METHODS, loaded)  # all: for its kind
    fit_mode = common.check_fit(fit, loaded)
    explained = common.one_target(target, loaded, similar_to, different_from, fit_mode, "sanity")
    method_options = common.method_options(
        loaded, methods, {"layer": layer, "steps": steps, "baseline": baseline}, settings,
        smooth=smooth, noise=noise, seed=seed, batch_size=batch_size,
    )  # fmt: skip
    common.check_writable(out)
    with common.hold(out, debug):  # a second run into this folder is refused at once
        found = common.collect(paths, recursive=True)
        console = common.stderr()

        from saliency.checks.sanity import run_sanity

        inputs, files, failed = common.decode_all(found, loaded, fit_mode)
        names = [file.shown for file in files]

        progress = running.progress(console, quiet)
        with common.failures(out, debug, failing=(ValueError,)):
            with progress, running.passes_shown(progress):
                task = progress.add_task("randomizing", total=None)

                def on_step(done: int, total: int, name: str) -> None:
                    progress.update(task, total=total, completed=done, description=f"after {name}")

                result = run_sanity(
                    loaded.model, inputs, names, methods, mode=mode.value,
                    granularity=granularity.value, seed=seed, repredict=repredict,
                    options=method_options, normalization=loaded.normalization, on_step=on_step,
                    target=explained,
                )  # fmt: skip
            found_verdicts = _write(result, files, out, threshold, str(format.value))

        _print_verdicts(found_verdicts, result, threshold)
        if not quiet:
            console.print(
                f"{count(len(names), 'image')}, {count(len(result.steps), mode.value + ' step')}, "
                f"{failed} failed; "
                f"outputs in {escape(str(out))}/ (sanity.csv, sanity.json, sanity.{format.value}, "
                "strips/)"
            )
        if report:
            write_report(out, None, None, debug)
        raise typer.Exit(common.EXIT_FAILED if failed else common.EXIT_OK)


def _write(result: Any, files: list[Any], out: Path, threshold: float, suffix: str) -> Any:
    """The check's files: the CSV, the verdicts, the metric figure and a strip per image;
    returns the verdicts."""
    from saliency.checks.sanity import verdicts
    from saliency.checks.sanity_plots import plot_metrics, plot_strip, write_csv, write_verdicts
    from saliency.files.confine import Confinement

    gate = Confinement(out)  # strips/ a link leading out: refused before anything is written
    strips = [gate.inside(f"strips/{file.base.as_posix()}.{suffix}") for file in files]
    write_csv(result, out / "sanity.csv")
    found = verdicts(result, threshold)
    write_verdicts(found, out / "sanity.json")
    plot_metrics(result, out / f"sanity.{suffix}")
    for file, path in zip(files, strips, strict=True):
        plot_strip(result, file.shown, path)
    return found


def _print_verdicts(found: Any, result: Any, threshold: float) -> None:
    """The table on stdout: per method, the rank correlation of |map| and the verdict."""
    from rich.console import Console
    from rich.table import Table

    total = len(result.steps)
    table = Table(
        title="Rank correlation (Spearman) of |map| with the original model's map",
        caption=f"mean ± s.d. over {count(len(result.images), 'image')}; step 1 randomizes "
        f"{result.steps[0].name}, step {total} ends with {result.steps[-1].name}",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("method")
    table.add_column("step 1", justify="right")
    table.add_column(f"all {total} steps", justify="right")
    table.add_column("random map", justify="right")
    table.add_column(f"passes (< {threshold:g})")
    for verdict in found:
        table.add_row(
            verdict.method,
            f"{verdict.first[0]:.3f} ± {verdict.first[1]:.3f}",
            f"{verdict.last[0]:.3f} ± {verdict.last[1]:.3f}",
            f"{verdict.baseline:.3f}",
            "[green]yes[/]" if verdict.passes else "[red]no[/]",
        )
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    console.print(
        f"A method passes when its map, after every step is randomized, ranks pixels unlike the "
        f"original model's map: mean correlation below {threshold:g}. A map that stays similar "
        "depends on the image more than on the model (Adebayo et al. 2018)."
    )
    sys.stdout.flush()
