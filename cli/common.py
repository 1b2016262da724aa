"""What every command does alike: messages and exit codes, loading the model, checking options
through the library, collecting inputs, progress and signals. No saliency logic lives here."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from .options import value

if TYPE_CHECKING:
    import torch
    from rich.console import Console

    from saliency import LoadedModel, MethodOptions, RenderOptions
    from saliency.files.inputs import InputFile, Inputs
    from saliency.parallel.group import Group
    from saliency.parallel.shards import Shard
    from saliency.tasks import ClassChoice, TargetPlan

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    stderr().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def methods_from(
    chosen: list[str] | None, default: tuple[str, ...] = ("guided",),
    loaded: LoadedModel | None = None,
) -> tuple[str, ...]:  # fmt: skip
    """The chosen methods' names, 'all' expanded (the methods for ``loaded``'s kind), in order,
    without repeats."""
    from saliency.engine.registry import expand_methods

    try:
        names = list(chosen) if chosen else list(default)
        return expand_methods(names, None if loaded is None else loaded.provides)
    except ValueError as exc:
        fail(str(exc))


def quick_methods(loaded: LoadedModel) -> tuple[str, ...]:
    """Every method for ``loaded``'s kind but the slow ones (see ``saliency methods``):
    compare's default."""
    from saliency.engine.registry import quick_methods as quick

    return tuple(m.name for m in quick(loaded.provides))


def alone(command: str) -> None:
    """Refuse to run ``command`` as one of many torchrun processes: it does not split its work,
    so every process would do all of it."""
    if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        fail(f"saliency {command} runs as one process; under torchrun only explain splits its work")


def load(
    model: str,
    weights: Path | None,
    labels: Path | None,
    device: str,
    debug: bool,
    group: Group | None = None,
    kind: str | None = None,
    given: tuple[str, ...] = (),
    seed: int = 0,
) -> LoadedModel:
    """The model on ``device`` (a torchrun rank's own GPU in a ``group``), as ``kind`` (None:
    the kind its name says, or one that the ``given`` options ask for: an embedding for a
    reference photo); ``--weights random`` drawn from ``seed``. Weights that cannot be had
    offline are refused with the ways out as options."""
    import saliency
    from saliency.models.devices import resolve_device
    from saliency.tasks.registry import implied

    if kind is None:
        asked = implied(list(given))
        kind = None if asked is None else asked.name

    try:
        resolved = resolve_device(device)
        if group is not None:
            resolved = group.device(resolved)
    except (ValueError, saliency.SaliencyError) as exc:
        if debug:
            raise
        fail(str(exc))
    try:
        loaded = saliency.load_model(
            model, weights=weights, device=resolved, labels=labels, kind=kind, seed=seed
        )
    except saliency.WeightsUnavailable as exc:
        if debug:
            raise
        fail(
            f"{model}: {exc.why}. Offline, use --model efficientnet_lite0 (its weights ship "
            f"with saliency), --weights PATH (a checkpoint of {model}), or --weights random "
            "(drawn from --seed: to try the architecture, not to explain what it learned)"
        )
    except saliency.SaliencyError as exc:
        if debug:
            raise
        fail(str(exc))
    return loaded


def check_tuned(asked: bool | None, loaded: LoadedModel, methods: Sequence[str]) -> None:
    """A usage error for ``--tuned-pass`` where the pass cannot be tuned."""
    from saliency import get_method
    from saliency.models.tuning import tunes

    try:
        tunes(loaded, [get_method(m) for m in methods], asked)
    except ValueError as exc:
        fail(f"--tuned-pass: {exc}; drop it")


def check_fit(fit: Enum | None, loaded: LoadedModel) -> str | None:
    """The fit mode, refused before any work if the model cannot take it."""
    try:
        loaded.check_fit(value(fit))
    except ValueError:  # the choices are valid, so the model needs a fixed size
        fail(f"{loaded.name} needs a fixed input size: use --fit resize or --fit crop")
    return value(fit)


def run_target(
    spec: str,
    loaded: LoadedModel,
    similar_to: Path | None,
    different_from: Path | None,
    fit: str | None,
    detections: tuple[float | None, int | None, bool] = (None, None, False),
) -> TargetPlan:
    """What a run explains in each photo: the plan of the model's kind for ``--target``,
    ``--similar-to``/``--different-from`` and ``detections`` = (--min-score,
    --max-detections, --per-box-normalize); a usage error where they do not fit."""
    from saliency.errors import SaliencyError
    from saliency.tasks import Request

    if similar_to is not None and different_from is not None:
        fail("give --similar-to or --different-from, not both")
    reference = similar_to or different_from
    request = Request(spec, reference, different_from is not None, *detections, fit=fit)
    try:
        return loaded.kind.plan(loaded, request)
    except (ValueError, SaliencyError) as exc:
        if not isinstance(exc, SaliencyError):
            fail(str(exc))
        flag = "--similar-to" if similar_to is not None else "--different-from"
        fail(f"{flag} {reference}: {getattr(exc, 'reason', exc)}")


def given(similar_to: Path | None, different_from: Path | None) -> tuple[str, ...]:
    """The request's options given that may ask for a kind when the model is loaded."""
    return ("reference",) if similar_to or different_from else ()


def one_target(
    spec: str,
    loaded: LoadedModel,
    similar_to: Path | None,
    different_from: Path | None,
    fit: str | None,
    command: str,
) -> Any:
    """The one target per photo of ``compare``, ``sanity`` or ``evaluate``: None for the top-1
    class, a target object otherwise (a class, a segmentation's class over its pixels or its
    main class, a similarity, the best detection); a usage error for topk."""
    found = run_target(spec, loaded, similar_to, different_from, fit)
    if not found.one_per_image:
        fail(f"{command} shows one target per image: use top1, a class index or a class name")
    return found.one()


def target(spec: str, categories: list[str]) -> ClassChoice:
    from saliency.tasks import parse_class

    try:
        return parse_class(spec, categories)
    except ValueError as exc:
        fail(str(exc))


def method_options(
    loaded: LoadedModel,
    methods: tuple[str, ...],
    named: dict[str, Any],
    pairs: list[str] | None,
    flags: dict[str, str] | None = None,
    **run: Any,
) -> MethodOptions:
    """The methods' settings from their named options (those given; ``flags`` spells those
    whose option is not ``--NAME``) and ``--set`` pairs, with ``run`` (smooth, noise, seed,
    batch_size); checked, the layer resolved: a usage error now."""
    from saliency import MethodOptions
    from saliency.engine.options import UnusedSettingError, parse_settings
    from saliency.engine.registry import get_method
    from saliency.pipeline.options import resolve_method_options

    given = {name: value(v) if isinstance(v, Enum) else v for name, v in named.items()}
    given = {name: v for name, v in given.items() if v is not None}
    spelled = {name: (flags or {}).get(name, f"--{name}") for name in named}
    settings: dict[str, Any] = {}
    try:
        settings = parse_settings([get_method(m) for m in methods], pairs or [])
        for name in given.keys() & settings.keys():
            fail(f"{spelled[name]} and --set {name}=... both given: give one")
        options = MethodOptions(settings={**given, **settings}, **run)
        return resolve_method_options(loaded, methods, options)
    except UnusedSettingError as exc:  # named as the user gave it: an option or --set
        pair = exc.name in settings or exc.name not in given  # from --set NAME=VALUE
        flag = f"--set {exc.name}" if pair else spelled[exc.name]
        if not exc.users:
            fail(str(exc))
        fail(f"{flag} is used only by {exc.described_users}; add one with --method")
    except ValueError as exc:
        fail(str(exc))


def render_options(
    style: Enum, reduce: Enum, sign: Enum, clip: float, cmap: str | None, alpha: float
) -> RenderOptions:
    from saliency import RenderOptions

    try:
        return RenderOptions(
            style=str(style.value),
            reduce=str(reduce.value),
            sign=str(sign.value),
            clip_percentile=clip,
            cmap=cmap,
            alpha=alpha,
        )
    except ValueError as exc:
        fail(str(exc))


def check_paths(paths: list[str]) -> None:
    """A usage error, before the model is loaded or anything is made, where no path given
    names anything (a typo in the only path): each named, with what it may have meant."""
    from saliency.files.inputs import close_paths, exists

    if any(exists(p) for p in paths):
        return  # the run names each missing one (a row of its own, exit 1)
    lines = []
    for path in paths:
        close = close_paths(path)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        lines.append(f"{path}: no such file or folder{hint}")
    if len(lines) == 1:
        fail(f"{lines[0]}; nothing was done")
    fail("no path given exists; nothing was done\n" + "\n".join(f"  {line}" for line in lines))


def collect(
    paths: list[str], recursive: bool, exclude: Path | None = None, name_missing: bool = True
) -> Inputs:
    """The inputs (never from ``exclude`` or another output folder); with ``name_missing``,
    each path that does not exist named on stderr (a run that reports it itself says no);
    usage error if none at all."""
    from saliency.files.inputs import collect_inputs

    found = collect_inputs(paths, recursive=recursive, exclude=[exclude] if exclude else [])
    if not found.files and not found.missing:
        skipped = f" (output folders are not read: {', '.join(found.excluded)})"
        fail("no images found in " + ", ".join(paths) + (skipped if found.excluded else ""))
    for missing in found.missing if name_missing else ():
        stderr().print(f"[red]error:[/] {escape(missing)}: no such file or folder")
    return found


def decode_all(
    found: Inputs, loaded: LoadedModel, fit: str | None
) -> tuple[list[torch.Tensor], list[InputFile], int]:
    """The inputs as model tensors, with their files, and how many failed (missing paths
    included), each failure named on stderr: one bad file does not stop the others. Exit 1 if
    none could be read."""
    from saliency.pipeline.stages import decode

    failed = len(found.missing)
    tensors, files = [], []
    for file in found.files:
        item = decode(file, loaded, fit)
        if item.tensor is None:
            failed += 1
            stderr().print(f"[red]error:[/] {escape(file.shown)}: {escape(str(item.error))}")
            continue
        tensors.append(item.tensor)
        files.append(file)
    if not tensors:
        fail("no image could be read", EXIT_FAILED)
    return tensors, files, failed


def check_writable(out: Path) -> None:
    """Refuse an output folder we cannot create or write into, before any work."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        fail(f"cannot write to --out {out}: {exc.strerror or exc}")


@contextmanager
def hold(out: Path, debug: bool, shard: Shard | None = None) -> Iterator[None]:
    """Hold the output folder for this run (or ``shard`` of it); another run holding it is a
    usage error."""
    from saliency.errors import OutputBusyError, UnsafePathError
    from saliency.files.lock import lock_output

    with ExitStack() as stack:
        try:
            stack.enter_context(lock_output(out, shard))
        except (OutputBusyError, UnsafePathError) as exc:
            if debug:
                raise
            fail(str(exc))
        yield


@contextmanager
def failures(
    out: Path,
    debug: bool,
    doing: str = "write to",
    usage: tuple[type[Exception], ...] = (),
    failing: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """A command's work, its errors turned into one line and an exit code: Ctrl-C 130, a
    ``usage`` error 2, a ``failing`` error 1, and any other file error 1 ("cannot ``doing``
    ``out``"; a file of ``out`` that leads outside it is a usage error too). ``--debug`` shows
    the traceback instead."""
    from saliency.errors import UnsafePathError

    refused: tuple[type[Exception], ...] = (UnsafePathError, *usage)
    try:
        yield
    except KeyboardInterrupt:
        stderr().print("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except refused as exc:
        if debug:
            raise
        fail(str(exc))
    except failing as exc:
        if debug:
            raise
        fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        if debug:
            raise
        fail(f"cannot {doing} {out}: {exc.strerror or exc}", EXIT_FAILED)
