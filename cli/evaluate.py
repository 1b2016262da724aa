"""``saliency evaluate``: which map to trust? Faithfulness and class sensitivity, with baselines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from saliency import choices

from . import common, running
from .common import count, escape
from .options import (
    BaselineOpt,
    DebugOpt,
    DeviceOpt,
    DifferentFromOpt,
    Fill,
    FitOpt,
    KindOpt,
    LabelsOpt,
    LayerOpt,
    Metric,
    ModelOpt,
    PathsArg,
    QuietOpt,
    ReduceOpt,
    ReportOpt,
    SetOpt,
    SimilarToOpt,
    StepsOpt,
    TargetOpt,
    WeightsOpt,
    method_option,
)
from .report import write as write_report

if TYPE_CHECKING:
    from saliency import LoadedModel


def evaluate(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "evaluation_out"
    ),
    model: ModelOpt = "efficientnet_lite0",
    kind: KindOpt = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: Annotated[list[str] | None, method_option("gradient, guided, gradcam")] = None,
    target: TargetOpt = "top1",
    similar_to: SimilarToOpt = None,
    different_from: DifferentFromOpt = None,
    metric: Annotated[
        list[Metric] | None,
        typer.Option(
            "--metric",
            help="Repeatable. [default: all five; with a target, all but class_sensitivity; "
            "on a detector, those four and pointing_game]",
        ),
    ] = None,
    curve_steps: Annotated[
        int,
        typer.Option(min=1, help="Deletion and insertion: pixels go in this many equal steps."),
    ] = 20,
    fill: Annotated[
        Fill,
        typer.Option(help="What removed pixels become (and insertion starts from)."),
    ] = "blur",
    contrast: Annotated[
        str | None,
        typer.Option(
            help="Class sensitivity: the class to compare the top-1 map with (index or name). "
            "[default: the lowest of each image's top 5]",
            show_default=False,
        ),
    ] = None,
    reduce: ReduceOpt = "max",
    seed: Annotated[
        int, typer.Option(help="Seed of the random map, ROAD's noise and RISE's masks.")
    ] = 0,
    layer: LayerOpt = None,
    steps: StepsOpt = None,
    baseline: BaselineOpt = None,
    settings: SetOpt = None,
    fit: FitOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per batch, and perturbed copies per forward pass.")
    ] = 64,
    tuned_pass: Annotated[
        bool | None,
        typer.Option(
            "--tuned-pass/--plain-pass",
            help="Score the perturbed copies with the model's batch norms as per-channel "
            "scales and its weights channels_last: probabilities within 1e-6, 1.4x faster on a "
            "CPU; not for detectors. The maps are the model's own. [default: tuned on a CPU]",
            show_default=False,
        ),
    ] = None,
    report: ReportOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score maps: deletion, insertion, ROAD and class sensitivity, beside baselines.

    Metrics: [b]deletion[/] and [b]insertion[/] (RISE), [b]road_morf[/] and [b]road_lerf[/]
    (ROAD), [b]class_sensitivity[/], and on a detector [b]pointing_game[/] (the map's peak
    inside the box); baselines: a [b]random[/] and a [b]centre[/] map.

    Writes [b]evaluation.csv[/] (image, method, metric, value), [b]curves.csv[/],
    [b]evaluation.json[/] (the leaderboard) and [b]evaluation.png[/], and prints the leaderboard:
    mean ± s.d. per method and metric, the best in bold. The same seed gives the same files.
    """
    common.alone("evaluate")
    common.check_paths(paths)
    loaded = common.load(model, weights, labels, device, debug, kind=kind,
                         given=common.given(similar_to, different_from), seed=seed)
    methods = common.methods_from(method, ("gradient", "guided", "gradcam"), loaded)
    common.check_tuned(tuned_pass, loaded, [])  # the copies' pass: no method's rules in it
    fit_mode = common.check_fit(fit, loaded)
    explained = common.one_target(target, loaded, similar_to, different_from, fit_mode, "evaluate")
    metrics = _metrics(metric, explained is not None, loaded)
    method_options = common.method_options(
        loaded, methods, {"layer": layer, "steps": steps, "baseline": baseline}, settings,
        batch_size=batch_size,
    )  # fmt: skip
    contrast_class = None
    if contrast is not None:
        spec = common.target(contrast, loaded.categories)
        if spec.kind != "class":
            common.fail(f"--contrast takes one class (an index or a name), got {contrast!r}")
        contrast_class = spec.index
    common.check_writable(out)
    with common.hold(out, debug):  # a second run into this folder is refused at once
        found = common.collect(paths, recursive=True, exclude=out)
        console = common.stderr()

        from saliency.evaluation.outputs import leaderboard
        from saliency.evaluation.run import Protocol
        from saliency.evaluation.run import evaluate as run_evaluation

        inputs, files, failed = common.decode_all(found, loaded, fit_mode)
        names = [file.shown for file in files]
        protocol = Protocol(
            curve_steps, str(fill.value), contrast=contrast_class, reduce=str(reduce.value),
            seed=seed, batch_size=batch_size,
        )  # fmt: skip
        if not quiet:
            _say_cost(loaded, protocol, metrics, methods, method_options, inputs, tuned_pass)
        progress = running.progress(console, quiet)
        with common.failures(out, debug, usage=(ValueError,)):
            with progress, running.passes_shown(progress):
                task = progress.add_task("evaluating", total=len(inputs))
                result = run_evaluation(
                    loaded, inputs, methods, metrics, names, protocol=protocol,
                    options=method_options, on_batch=lambda n: progress.advance(task, n),
                    target=explained, tuned=tuned_pass,
                )  # fmt: skip
            _write(result, out)
        _print_leaderboard(leaderboard(result), len(names))
        if not quiet:
            console.print(
                f"{count(len(names), 'image')}, {failed} failed; outputs in {escape(str(out))}/ "
                "(evaluation.csv, curves.csv, evaluation.json, evaluation.png)"
            )
        if report:
            write_report(out, None, None, debug)
        raise typer.Exit(common.EXIT_FAILED if failed else common.EXIT_OK)


def _write(result: Any, out: Path) -> None:
    """The evaluation's files: scores, curves, leaderboard and the curves' figure."""
    from saliency.evaluation.outputs import (
        plot_curves,
        write_curves,
        write_leaderboard,
        write_scores,
    )

    write_scores(result, out / "evaluation.csv")
    write_curves(result, out / "curves.csv")
    write_leaderboard(result, out / "evaluation.json")
    plot_curves(result, out / "evaluation.png")


def _say_cost(
    loaded: LoadedModel,
    protocol: Any,
    metrics: list[str],
    methods: tuple[str, ...],
    options: Any,
    inputs: list[Any],
    tuned: bool | None,
) -> None:
    """Before the work: the forward passes and ROAD imputations the metrics take, and how long
    they will be, from the pass that scores the copies and one imputation measured now on the
    first photo (an evaluation of 2 photos and 2 methods took 46 s on 2 cores and said nothing)."""
    from saliency.engine.registry import get_method
    from saliency.evaluation.road import impute_seconds
    from saliency.evaluation.run import batches
    from saliency.models.timing import duration, pass_seconds
    from saliency.models.tuning import tuned_loaded, tunes

    maps = len(inputs) * (len(methods) + 2)  # the random and centre baselines too
    size = (int(inputs[0].shape[-2]), int(inputs[0].shape[-1]))
    own = sum(get_method(m).forwards(options.of(get_method(m)), size) or 0 for m in methods)
    passes = maps * protocol.forwards(metrics) + len(inputs) * own
    passes += len(inputs) * protocol.shared_forwards(metrics)
    scorer = tuned_loaded(loaded) if tunes(loaded, (), tuned) else loaded
    seconds = passes * pass_seconds(scorer, protocol.per_pass(loaded.device), size)
    said = f"{passes:,} forward passes"
    imputations = maps * protocol.imputations(metrics)
    if imputations:
        # the centre baseline's holes are the same for a batch's photos: one system a batch
        shared = len(inputs) - len(batches(inputs, protocol.batch_size))
        systems = imputations - shared * protocol.imputations(metrics)
        seconds += systems * impute_seconds(inputs[0].to(loaded.device))
        said += f" and {imputations:,} ROAD imputations"
    photos, chosen = common.count(len(inputs), "photo"), common.count(len(methods), "method")
    common.stderr().print(
        f"[dim]evaluate: {photos}, {chosen} and 2 baselines: {said}, about "
        f"{duration(seconds)} here (measured now), the maps on top[/]"
    )


def _metrics(asked: list[Metric] | None, targeted: bool, loaded: LoadedModel) -> list[str]:
    """The metrics to score: those asked for, or all that apply to the model's kind (a usage
    error when one that does not is asked for by name); with a target, class sensitivity left
    out."""
    from saliency.tasks import all_kinds

    metrics = [str(m.value) for m in asked] if asked else list(choices.METRICS)
    for name in [m for m in metrics if m not in loaded.kind.metrics]:
        if asked:
            kinds = " or ".join(k.name for k in all_kinds() if name in k.metrics)
            common.fail(f"{name} does not apply to a {loaded.kind.name} model: it takes a "
                        f"{kinds} model")  # fmt: skip
        metrics.remove(name)
    if targeted and "class_sensitivity" in metrics:
        if asked:
            common.fail(
                "class_sensitivity compares the maps of a classifier's top-1 and "
                "another class: it takes no --target, --similar-to or --different-from"
            )
        metrics.remove("class_sensitivity")
    return metrics


def _print_leaderboard(standings: list[Any], images: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from saliency.evaluation.metrics import LOWER_IS_BETTER

    metrics = list(dict.fromkeys(s.metric for s in standings))
    methods = list(dict.fromkeys(s.method for s in standings))
    table = Table(
        title="Leaderboard: mean ± s.d. over " + count(images, "image") + "; best in bold",
        caption="↓ lower is better, ↑ higher; random and centre are baselines: a method that "
        "does not beat them on a metric tells nothing there",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("method")
    for name in metrics:
        table.add_column(f"{name} {'↓' if LOWER_IS_BETTER[name] else '↑'}", justify="right")
    for method in methods:
        cells = []
        for name in metrics:
            s = next(x for x in standings if x.method == method and x.metric == name)
            text = f"{s.mean:.3f} ± {s.sd:.3f}"
            cells.append(f"[bold]{text}[/]" if s.best else text)
        table.add_row(method, *cells)
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or file: wide enough for one line per method
        console = Console(highlight=False, width=max(console.width, 30 + 17 * len(metrics)))
    console.print(table)
