"""The options that several commands share, with choices from the library's torch-free lists
(:mod:`saliency.choices` and the method registry's names), so ``saliency --help`` stays instant."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import typer

from saliency import choices
from saliency.engine.registry import method_names


def _choices(name: str, values: tuple[str, ...] | list[str]) -> type[Enum]:
    """A str Enum of ``values`` for Typer; a member is looked up as ``Choice["value"]``."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


if TYPE_CHECKING:  # made at run time from the lists: opaque to the checker
    Baseline: TypeAlias = Any
    Style: TypeAlias = Any
    Sign: TypeAlias = Any
    Reduce: TypeAlias = Any
    Fit: TypeAlias = Any
    Mode: TypeAlias = Any
    Granularity: TypeAlias = Any
    FigureFormat: TypeAlias = Any
    PictureFormat: TypeAlias = Any
    RawFormat: TypeAlias = Any
    Metric: TypeAlias = Any
    Fill: TypeAlias = Any
else:
    Baseline = _choices("Baseline", choices.BASELINES)
    Style = _choices("Style", choices.STYLES)
    Sign = _choices("Sign", choices.SIGNS)
    Reduce = _choices("Reduce", choices.REDUCTIONS)
    Fit = _choices("Fit", choices.FIT_MODES)
    Mode = _choices("Mode", choices.SANITY_MODES)
    Granularity = _choices("Granularity", choices.GRANULARITIES)
    FigureFormat = _choices("FigureFormat", choices.FIGURE_FORMATS)
    PictureFormat = _choices("PictureFormat", choices.PICTURE_FORMATS)
    RawFormat = _choices("RawFormat", choices.RAW_FORMATS)
    Metric = _choices("Metric", choices.METRICS)
    Fill = _choices("Fill", choices.FILLS)

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
    typer.Option(
        help="A local checkpoint (state dict) of the architecture --model names; or random: "
        "weights drawn from --seed, to try any architecture offline.",
    ),
]
LabelsOpt = Annotated[
    Path | None, typer.Option(help="Class names: a text file (one per line) or a JSON list.")
]
DeviceOpt = Annotated[
    str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps.")
]
def check_methods(given: list[str] | None) -> list[str] | None:
    """``--method`` values checked as they are parsed: an unknown name is a usage error that
    says what it may have meant (the choices are listed once, by ``saliency methods``)."""
    import difflib

    valid = [*method_names(), "all"]
    for name in given or []:
        if name.strip().lower() not in valid:
            typed = name.strip().lower()
            close = [n for n in valid if typed and (n.startswith(typed) or typed in n.split("_"))]
            close += [n for n in difflib.get_close_matches(typed, valid, n=3, cutoff=0.5)
                      if n not in close]  # fmt: skip
            close = close[:4]
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise typer.BadParameter(
                f"{name!r} is not a method{hint} ('saliency methods' lists them; 'all' is "
                "every method for the model)"
            )
    return given


def complete_methods(incomplete: str) -> list[str]:
    """Tab completion of ``--method``: the methods' names that start as typed."""
    return [name for name in [*method_names(), "all"] if name.startswith(incomplete.lower())]


def method_option(default: str) -> Any:
    """The ``--method`` option of a command whose default is ``default``."""
    return typer.Option(
        "--method",
        metavar="METHOD",
        callback=check_methods,
        autocompletion=complete_methods,
        help=f"Repeatable; 'all': every method for the model (saliency methods lists them). "
        f"[default: {default}]",
        show_default=False,
    )


MethodOpt = Annotated[list[str] | None, method_option("guided")]
LayerOpt = Annotated[
    str | None,
    typer.Option(
        help="The CAM layer: a submodule name such as layer4, or NAME:READER to say how its "
        "output is read (channels_first, channels_last, pyramid). "
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
SeedOpt = Annotated[
    int,
    typer.Option(help="Seed of SmoothGrad's noise, RISE's masks and --weights random's weights."),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Integrated Gradients: points on the path (batched). [default: 32]",
        show_default=False,
    ),
]
BaselineOpt = Annotated[
    Baseline | None,
    typer.Option(
        help="Integrated Gradients' path start and what occlusion hides with: black image, "
        "zero input (the mean colour), or the photo blurred. [default: black]",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="A method's own setting, repeatable (e.g. --set steps=64); 'saliency methods' "
        "lists each method's settings, with their defaults.",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    str,
    typer.Option(
        help="top1, topk:N, a class index, or a class name (case-insensitive); for a "
        "segmentation model, a class over its pixels (default: each class present)."
    ),
]
SimilarToOpt = Annotated[
    Path | None,
    typer.Option(
        help="Explain what makes each photo like this one: the model as an embedding (its "
        "head removed), the cosine of the embeddings.",
        show_default=False,
    ),
]
KindOpt = Annotated[
    str | None,
    typer.Option(
        help="Load the model as this kind: multilabel (a classifier with a sigmoid per class), "
        "or a kind a package adds ('saliency models --kinds' lists them). "
        "[default: what the model's name says]",
        show_default=False,
    ),
]
MinScoreOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="A detector's or a multi-label classifier's: explain each detection, or class, "
        "scored this or more. [default: 0.5]",
        show_default=False,
    ),
]
MaxDetectionsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="A detector's: explain at most this many per image. [default: 10]",
        show_default=False,
    ),
]  # fmt: skip
PerBoxOpt = Annotated[
    bool,
    typer.Option(
        "--per-box-normalize",
        help="A detector's: cut each map to its box and scale it there from 0 to 1.",
    ),
]
DifferentFromOpt = Annotated[
    Path | None,
    typer.Option(
        help="Explain what makes each photo unlike this one (1 - the cosine).",
        show_default=False,
    ),
]
FitOpt = Annotated[
    Fit | None,
    typer.Option(
        help="native: whole photo, aspect kept (default); crop: the model's center crop; "
        "resize: whole photo squeezed to the model's input."
    ),
]
StyleOpt = Annotated[Style, typer.Option(help="Picture style.")]
SignOpt = Annotated[
    Sign,
    typer.Option(help="Which part of the map to show; 'all' is diverging."),
]
ReduceOpt = Annotated[
    Reduce,
    typer.Option(help="Channel reduction: max of |value| (Simonyan) or sum of |value|."),
]
ClipOpt = Annotated[
    float, typer.Option(help="Clip the map at this percentile of |value|, (0, 100].")
]
CmapOpt = Annotated[
    str | None,
    typer.Option(help="Any matplotlib colormap. [default: inferno; coolwarm with --sign all]"),
]
AlphaOpt = Annotated[float, typer.Option(help="Overlay opacity at the strongest pixels, [0, 1].")]
FigureFormatOpt = Annotated[
    FigureFormat,
    typer.Option("--format", help="Figure file format."),
]
PictureFormatOpt = Annotated[
    PictureFormat,
    typer.Option(
        "--format",
        help="Picture format: png (lossless), jpg or webp (--quality; jpg is the fastest).",
    ),
]
ReportOpt = Annotated[
    bool, typer.Option("--report", help="Also write OUT/report.html (see saliency report).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option(help="Show tracebacks.")]
TunedPassOpt = Annotated[
    bool | None,
    typer.Option(
        "--tuned-pass/--plain-pass",
        help="Run the model with its batch norms as per-channel scales and its weights "
        "channels_last: the same maps within float32 rounding, 1.1-1.5x faster on a CPU; not "
        "for detectors or LRP. [default: tuned on a CPU]",
        show_default=False,
    ),
]
PathsArg = Annotated[
    list[str], typer.Argument(metavar="PATH...", help="Image files, folders or glob patterns.")
]


def value(choice: Enum | None) -> str | None:
    """The string behind a choice, or None."""
    return None if choice is None else str(choice.value)
