"""The ``saliency`` command. Arguments, progress and messages live here; the work in ``saliency``.

torch, torchvision, timm and matplotlib are imported only once a command starts working, so
``saliency --help`` answers at once.
"""

from __future__ import annotations

import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

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

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Method(str, Enum):
    gradient = "gradient"
    deconvnet = "deconvnet"
    guided = "guided"
    gradcam = "gradcam"
    guided_gradcam = "guided_gradcam"
    integrated_gradients = "integrated_gradients"
    gradient_x_input = "gradient_x_input"
    all = "all"


class Baseline(str, Enum):
    black = "black"
    zero = "zero"
    blurred = "blurred"


class Style(str, Enum):
    overlay = "overlay"
    heatmap = "heatmap"
    rgb = "rgb"
    grayscale = "grayscale"


class Sign(str, Enum):
    abs = "abs"
    positive = "positive"
    negative = "negative"
    all = "all"


class Reduce(str, Enum):
    max = "max"
    sum = "sum"


class Fit(str, Enum):
    native = "native"
    crop = "crop"
    resize = "resize"


class Mode(str, Enum):
    cascading = "cascading"
    independent = "independent"


class Granularity(str, Enum):
    stage = "stage"
    layer = "layer"


class Format(str, Enum):
    png = "png"
    pdf = "pdf"


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    _stderr().print(f"[bold red]error:[/] {_escape(message)}")
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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


# Options shared by explain and compare.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="efficientnet_lite0 (offline default), a torchvision name (resnet50, "
        "resnet50:IMAGENET1K_V1) or timm/<name>.",
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(help="Local checkpoint (state dict) for the architecture named by --model."),
]
LabelsOpt = Annotated[
    Path | None, typer.Option(help="Class names: a text file (one per line) or a JSON list.")
]
DeviceOpt = Annotated[
    str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps.")
]
MethodOpt = Annotated[
    list[Method] | None,
    typer.Option(
        "--method",
        help="Repeatable; 'all' means every method (see 'saliency methods'). [default: guided]",
    ),
]
LayerOpt = Annotated[
    str | None,
    typer.Option(
        help="Grad-CAM layer (gradcam, guided_gradcam): a submodule name such as layer4. "
        "[default: the last feature-map stage, found automatically]"
    ),
]
SmoothOpt = Annotated[
    int,
    typer.Option(min=0, help="SmoothGrad: average each map over N noisy copies (0: off)."),
]
NoiseOpt = Annotated[
    float,
    typer.Option(help="SmoothGrad noise: standard deviation as a fraction of the input's range."),
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the SmoothGrad noise.")]
StepsOpt = Annotated[
    int, typer.Option(min=1, help="Integrated Gradients: points on the path (batched).")
]
BaselineOpt = Annotated[
    Baseline,
    typer.Option(
        help="Integrated Gradients baseline: black image, zero input (the mean colour), "
        "or the photo blurred."
    ),
]
TargetOpt = Annotated[
    str,
    typer.Option(help="top1, topk:N, a class index, or a class name (case-insensitive)."),
]
FitOpt = Annotated[
    Fit | None,
    typer.Option(
        help="native: whole photo, aspect kept (default); crop: the model's center crop; "
        "resize: whole photo squeezed to the model's input."
    ),
]
StyleOpt = Annotated[Style, typer.Option(help="Picture style.")]
SignOpt = Annotated[Sign, typer.Option(help="Which part of the map to show; 'all' is diverging.")]
ReduceOpt = Annotated[
    Reduce, typer.Option(help="Channel reduction: max of |value| (Simonyan) or sum of |value|.")
]
ClipOpt = Annotated[
    float, typer.Option(help="Clip the map at this percentile of |value|, (0, 100].")
]
CmapOpt = Annotated[
    str | None,
    typer.Option(help="Any matplotlib colormap. [default: inferno; coolwarm with --sign all]"),
]
AlphaOpt = Annotated[float, typer.Option(help="Overlay opacity at the strongest pixels, [0, 1].")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option(help="Show tracebacks.")]
PathsArg = Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")]


def _methods(chosen: list[Method] | None) -> tuple[str, ...]:
    every = tuple(m.value for m in Method if m is not Method.all)
    names: list[str] = []
    for method in chosen or [Method.guided]:
        for name in every if method is Method.all else (method.value,):
            if name not in names:
                names.append(name)
    return tuple(names)


def _method_options(loaded, methods, layer, smooth, noise, seed, steps, baseline, batch_size):
    """The methods' settings, checked; the Grad-CAM layer resolved on a probe input, so that a
    bad name is a usage error before any work."""
    import dataclasses

    import torch

    from saliency import MethodOptions, get_method, resolve_layer
    from saliency.state import explanation_mode

    options = MethodOptions(layer, smooth, noise, seed, steps, baseline.value, batch_size)
    chosen = [get_method(m) for m in methods]
    try:
        options.check(chosen)
        if any(m.uses_layer for m in chosen):
            size = loaded.input_size
            probe = torch.zeros(1, 3, size, size, device=loaded.device)
            with explanation_mode(loaded.model):
                name = resolve_layer(loaded.model, probe, layer)
            options = dataclasses.replace(options, layer=name)
    except ValueError as exc:
        _fail(str(exc).replace("a layer is used", "--layer is used"))
    return options


def _render_options(style, reduce, sign, clip, cmap, alpha):
    from saliency.render import RenderOptions

    try:
        return RenderOptions(
            style=style.value,
            reduce=reduce.value,
            sign=sign.value,
            clip_percentile=clip,
            cmap=cmap,
            alpha=alpha,
        )
    except ValueError as exc:
        _fail(str(exc))


def _load(model: str, weights: Path | None, labels: Path | None, device: str, debug: bool):
    import saliency
    from saliency.devices import resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError as exc:
        _fail(str(exc))
    try:
        return saliency.load_model(model, weights=weights, device=resolved, labels=labels)
    except saliency.SaliencyError as exc:
        if debug:
            raise
        _fail(str(exc))


def _check_fit(fit: Fit | None, loaded) -> None:
    """Refuse --fit native for a model that needs a fixed input size, before any work."""
    if fit is Fit.native and loaded.preprocessing.fixed_input_size:
        _fail(f"{loaded.name} needs a fixed input size: use --fit resize or --fit crop")


def _target(spec: str, categories: list[str]):
    from saliency.batch import parse_target

    try:
        return parse_target(spec, categories)
    except ValueError as exc:
        _fail(str(exc))


class _Stopper:
    """SIGINT/SIGTERM ask the run to stop after the current batch; a second signal stops now."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def __call__(self) -> bool:
        return self.signal is not None


@app.command()
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
    baseline: BaselineOpt = Baseline.black,
    fit: FitOpt = None,
    batch_size: Annotated[
        int, typer.Option(help="Inputs per pass (images, noisy copies or path points).")
    ] = 16,
    recursive: Annotated[bool, typer.Option(help="Descend into subfolders.")] = True,
    style: StyleOpt = Style.overlay,
    reduce: ReduceOpt = Reduce.max,
    sign: SignOpt = Sign.abs,
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
        _fail(f"--batch-size must be at least 1, got {batch_size}")
    methods = _methods(method)
    render_options = _render_options(style, reduce, sign, clip_percentile, cmap, alpha)
    loaded = _load(model, weights, labels, device, debug)
    _check_fit(fit, loaded)
    target_spec = _target(target, loaded.categories)
    method_options = _method_options(
        loaded, methods, layer, smooth, noise, seed, steps, baseline, batch_size
    )
    _check_writable(out)

    from saliency.batch import JobOptions, run_job

    found = _collect(paths, recursive)
    options = JobOptions(
        methods=methods,
        target=target_spec,
        fit=fit.value if fit else None,
        batch_size=batch_size,
        render=render_options,
        save_raw=save_raw,
        overwrite=overwrite,
        png_compression=png_compression,
        method_options=method_options,
    )
    console = _stderr()
    counts = {"images": 0, "maps": 0, "failed": len(found.missing), "done before": 0}
    started = time.perf_counter()
    progress = _progress(console, quiet)

    def on_image(outcome) -> None:
        if outcome.done:
            counts["done before"] += 1
        elif outcome.error:
            counts["failed"] += 1
            progress.console.print(
                f"[red]error:[/] {_escape(outcome.input.shown)}: {_escape(outcome.error)}"
            )
        else:
            counts["images"] += 1
            counts["maps"] += sum(row["status"] == "ok" for row in outcome.rows)
        for warning in outcome.warnings:
            progress.console.print(
                f"[yellow]warning:[/] {_escape(outcome.input.shown)}: {_escape(warning)}"
            )
        progress.advance(task)

    try:
        with progress, _Stopper() as stopper:
            task = progress.add_task("explaining", total=len(found.files))
            reports = run_job(loaded, found.files, out, options, on_image, stopper)
        _write_missing_rows(out, loaded.name, found.missing)  # after: --overwrite starts afresh
    except OSError as exc:
        if debug:
            raise
        _fail(f"cannot write to {out}: {exc.strerror or exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None

    for report in reports.values():
        message = report.warning()
        if message:
            console.print(f"[yellow]warning:[/] {_escape(message)}")
    elapsed = time.perf_counter() - started
    if not quiet:
        extra = f", {counts['done before']} already done" if counts["done before"] else ""
        skipped = f", {found.skipped} non-image files skipped" if found.skipped else ""
        rate = counts["images"] / elapsed if elapsed > 0 else 0.0
        console.print(
            f"{counts['images']} images, {counts['maps']} maps, {counts['failed']} failed"
            f"{extra}{skipped} in {elapsed:.1f} s ({rate:.1f} images/s); "
            f"outputs in {_escape(str(out))}/ (manifest {_escape(str(out / 'results.jsonl'))})"
        )
    if stopper.signal is not None:
        console.print("[yellow]interrupted:[/] finished items are saved; rerun to complete")
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_FAILED if counts["failed"] else EXIT_OK)


def _collect(paths: list[str], recursive: bool):
    """The inputs; each path that does not exist named on stderr; usage error if none at all."""
    from saliency.inputs import collect_inputs

    found = collect_inputs(paths, recursive=recursive)
    if not found.files and not found.missing:
        _fail("no images found in " + ", ".join(paths))
    for missing in found.missing:
        _stderr().print(f"[red]error:[/] {_escape(missing)}: no such file or folder")
    return found


def _check_writable(out: Path) -> None:
    """Refuse an output folder we cannot create or write into, before any work."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        _fail(f"cannot write to --out {out}: {exc.strerror or exc}")


def _write_missing_rows(out: Path, model: str, missing: list[str]) -> None:
    """An error row in the manifest for each named path that does not exist."""
    if not missing:
        return
    from saliency.outputs import Manifest

    manifest = Manifest(out)
    try:
        for path in missing:
            manifest.write(
                {
                    "image": path,
                    "model": model,
                    "top5": [],
                    "outputs": [],
                    "status": "error",
                    "error": "no such file or folder",
                }
            )
    finally:
        manifest.close()


def _progress(console, quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} img/s" if speed else "- img/s")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=False,
    )


@app.command()
def compare(
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
    baseline: BaselineOpt = Baseline.black,
    fit: FitOpt = None,
    grid: Annotated[bool, typer.Option(help="All images as rows of one figure.")] = False,
    format: Annotated[Format, typer.Option("--format", help="Figure file format.")] = Format.png,
    style: StyleOpt = Style.overlay,
    reduce: ReduceOpt = Reduce.max,
    sign: SignOpt = Sign.abs,
    clip_percentile: ClipOpt = 99.0,
    cmap: CmapOpt = None,
    alpha: AlphaOpt = 0.7,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One figure per image: the photo, then each method side by side (every method by default)."""
    methods = _methods(method or [Method.all])
    render_options = _render_options(style, reduce, sign, clip_percentile, cmap, alpha)
    loaded = _load(model, weights, labels, device, debug)
    _check_fit(fit, loaded)
    target_spec = _target(target, loaded.categories)
    if target_spec.kind == "topk":
        _fail("compare shows one target per image: use top1, a class index or a class name")
    method_options = _method_options(
        loaded, methods, layer, smooth, noise, seed, steps, baseline, 16
    )
    _check_writable(out)

    from saliency.figures import compare_rows, save_figure

    found = _collect(paths, recursive=True)
    console = _stderr()
    failed = len(found.missing)
    rows, written = [], []
    for file, row in compare_rows(
        loaded,
        found.files,
        methods,
        target_spec,
        fit.value if fit else None,
        render_options,
        method_options,
    ):
        if isinstance(row, str):
            failed += 1
            console.print(f"[red]error:[/] {_escape(file.shown)}: {_escape(row)}")
            continue
        if grid:
            rows.append(row)
        else:
            path = out / f"{file.base.as_posix()}.compare.{format.value}"
            try:
                save_figure([row], path)
            except OSError as exc:
                _fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED)
            written.append(path)
    if grid and rows:
        path = out / f"compare.{format.value}"
        try:
            save_figure(rows, path)
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED)
        written.append(path)
    if not quiet:
        console.print(f"{len(written)} figures, {failed} failed; outputs in {_escape(str(out))}/")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@app.command()
def sanity(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("sanity_out"),
    model: ModelOpt = "efficientnet_lite0",
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = "auto",
    method: Annotated[
        list[Method] | None,
        typer.Option(
            "--method",
            help="Repeatable; 'all' means every method. "
            "[default: gradient, guided, gradcam, guided_gradcam]",
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            help="cascading: randomize from the logits down, keeping earlier steps; "
            "independent: one step at a time, the rest original."
        ),
    ] = Mode.cascading,
    granularity: Annotated[
        Granularity,
        typer.Option(help="A step per stage (top-level block) or per layer (conv, linear, norm)."),
    ] = Granularity.stage,
    seed: Annotated[int, typer.Option(help="Seed of the re-initialization (and SmoothGrad).")] = 0,
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
    steps: StepsOpt = 32,
    baseline: BaselineOpt = Baseline.black,
    fit: FitOpt = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per pass.")] = 16,
    format: Annotated[Format, typer.Option("--format", help="Figure file format.")] = Format.png,
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
        _fail(f"--batch-size must be at least 1, got {batch_size}")
    if not 0.0 < threshold <= 1.0:
        _fail(f"--threshold must be in (0, 1], got {threshold}")
    methods = _methods(method or [Method.gradient, Method.guided, Method.gradcam,
                                  Method.guided_gradcam])  # fmt: skip
    loaded = _load(model, weights, labels, device, debug)
    _check_fit(fit, loaded)
    method_options = _method_options(
        loaded, methods, layer, smooth, noise, seed, steps, baseline, batch_size
    )
    _check_writable(out)
    found = _collect(paths, recursive=True)
    console = _stderr()

    from saliency import load_image
    from saliency.sanity import run_sanity, verdicts
    from saliency.sanity_plots import plot_metrics, plot_strip, write_csv

    failed = len(found.missing)
    inputs, names, files = [], [], []
    for file in found.files:
        try:
            image = load_image(
                file.path, lambda full: loaded.preprocessing.source_size(full, fit and fit.value)
            )
            tensor, _ = loaded.preprocess(image, fit.value if fit else None)
        except Exception as exc:  # one bad file must not stop the others
            failed += 1
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            console.print(f"[red]error:[/] {_escape(file.shown)}: {_escape(reason)}")
            continue
        inputs.append(tensor)
        names.append(file.shown)
        files.append(file)
    if not inputs:
        _fail("no image could be read", EXIT_FAILED)

    progress = _progress(console, quiet)
    try:
        with progress:
            task = progress.add_task("randomizing", total=None)

            def on_step(done: int, total: int, name: str) -> None:
                progress.update(task, total=total, completed=done, description=f"after {name}")

            result = run_sanity(
                loaded.model,
                inputs,
                names,
                methods,
                mode=mode.value,
                granularity=granularity.value,
                seed=seed,
                repredict=repredict,
                options=method_options,
                normalization=(loaded.preprocessing.mean, loaded.preprocessing.std),
                on_step=on_step,
            )
        write_csv(result, out / "sanity.csv")
        plot_metrics(result, out / f"sanity.{format.value}")
        for file, name in zip(files, names, strict=True):
            plot_strip(result, name, out / "strips" / f"{file.base.as_posix()}.{format.value}")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:
        if debug:
            raise
        _fail(f"cannot write to {out}: {exc.strerror or exc}", EXIT_FAILED)
    except ValueError as exc:
        if debug:
            raise
        _fail(str(exc), EXIT_FAILED)

    _print_verdicts(verdicts(result, threshold), result, threshold)
    if not quiet:
        console.print(
            f"{_count(len(names), 'image')}, {_count(len(result.steps), mode.value + ' step')}, "
            f"{failed} failed; "
            f"outputs in {_escape(str(out))}/ (sanity.csv, sanity.{format.value}, strips/)"
        )
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _print_verdicts(found, result, threshold: float) -> None:
    """The table on stdout: per method, the rank correlation of |map| and the verdict."""
    from rich.console import Console
    from rich.table import Table

    count = len(result.steps)
    table = Table(
        title="Rank correlation (Spearman) of |map| with the original model's map",
        caption=f"mean ± s.d. over {_count(len(result.images), 'image')}; step 1 randomizes "
        f"{result.steps[0].name}, step {count} ends with {result.steps[-1].name}",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("method")
    table.add_column("step 1", justify="right")
    table.add_column(f"all {count} steps", justify="right")
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


@app.command()
def models(
    offline: Annotated[
        bool, typer.Option(help="Only models usable without a network now.")
    ] = False,
) -> None:
    """List models: name, source, parameters, and whether usable offline now."""
    from saliency import list_models

    for row in list_models(offline_only=offline):
        params = f"{row.parameters / 1e6:.1f}M" if row.parameters else "?"
        status = "offline" if row.offline else "needs download"
        typer.echo(f"{row.name:28s} {row.source:16s} {params:>8s}  {status}")


@app.command()
def methods() -> None:
    """List the methods, what each shows, and what it costs in passes (per batch and target)."""
    from saliency.methods import METHODS, SMOOTH_COST

    width = max(len(name) for name in METHODS)
    for method in METHODS.values():
        typer.echo(f"{method.name:{width}s}  {method.summary}")
        typer.echo(f"{'':{width}s}  cost: {method.cost}")
    typer.echo(f"{'--smooth N':{width}s}  SmoothGrad over any method (Smilkov et al. 2017)")
    typer.echo(f"{'':{width}s}  cost: {SMOOTH_COST}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
