"""Each command's ``--help``: its options in panels (input, model, methods, pictures, detection,
performance, runs), each as ``--name VALUE`` and its help beside it, wrapped to the terminal
(readable at 80 columns; 100 at most). The method names are listed once, by ``saliency
methods``, not in a metavar."""

from __future__ import annotations

import re
from typing import Any

from typer import BadParameter
from typer._click import Context, HelpFormatter, Parameter
from typer.core import TyperCommand, TyperGroup

# each option's panel, by parameter name; an option not named here goes to "Options"
PANELS: dict[str, str] = {
    **dict.fromkeys(
        ("paths", "out", "recursive", "fit", "inputs_from", "report", "title"), "Input and output"
    ),
    **dict.fromkeys(("model", "kind", "weights", "labels", "device"), "Model"),
    **dict.fromkeys(
        ("method", "target", "similar_to", "different_from", "layer", "smooth", "noise", "seed",
         "steps", "baseline", "settings"),
        "Methods",
    ),  # fmt: skip
    **dict.fromkeys(
        ("style", "reduce", "sign", "clip_percentile", "cmap", "alpha", "format", "quality",
         "png_compression", "save_raw", "raw_format", "grid", "columns"),
        "Pictures",
    ),  # fmt: skip
    **dict.fromkeys(("min_score", "max_detections", "per_box_normalize"), "Detection"),
    **dict.fromkeys(
        ("metric", "curve_steps", "fill", "contrast", "reduce_metric"), "Evaluation"
    ),
    **dict.fromkeys(
        ("mode", "granularity", "repredict", "threshold"), "Sanity check"
    ),
    **dict.fromkeys(
        ("batch_size", "workers", "device_pipeline", "tuned_pass"), "Performance"
    ),
    **dict.fromkeys(("overwrite", "shard", "quiet", "debug"), "Runs"),
}
ORDER = ("Input and output", "Model", "Methods", "Detection", "Evaluation", "Sanity check",
         "Pictures", "Performance", "Runs", "Options")  # fmt: skip
# what an option's value is, where its type alone says too little
METAVARS: dict[str, str] = {
    "out": "DIR",
    "inputs_from": "DIR",
    "model": "NAME",
    "kind": "KIND",
    "weights": "PATH|random",
    "labels": "FILE",
    "device": "DEVICE",
    "target": "TARGET",
    "similar_to": "PHOTO",
    "different_from": "PHOTO",
    "contrast": "CLASS",
    "layer": "NAME[:READER]",
    "shard": "I/N",
    "cmap": "NAME",
    "title": "TEXT",
}
_TYPES = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT"}


class Command(TyperCommand):
    """A command whose help is grouped in panels and fits the terminal."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """As Typer parses, with a bad value's message in our words: its validator's
        ``Value error,`` prefix dropped."""
        try:
            return super().parse_args(ctx, args)
        except BadParameter as exc:
            exc.message = exc.message.removeprefix("Value error, ")
            raise

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        """``[OPTIONS] PATH...``: the arguments by their metavars (in help and in errors)."""
        arguments = [label(p, ctx) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return ["[OPTIONS]", *arguments]

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.width = min(formatter.width or 80, 100)
        self.format_usage(ctx, formatter)
        paragraphs = (self.help or "").strip().split("\n\n")
        for paragraph in paragraphs:
            formatter.write_paragraph()
            formatter.write_text(_plain(paragraph))
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name = param.name or ""
            text = record[1]
            if getattr(param, "is_flag", False) and param.default is False:
                text = re.sub(r"\s*\[default: no-[\w-]+\]", "", text)  # off unless given
            panels.setdefault(PANELS.get(name, "Options"), []).append((label(param, ctx), text))
        for title in sorted(panels, key=lambda t: ORDER.index(t) if t in ORDER else len(ORDER)):
            with formatter.section(title):
                formatter.write_dl(panels[title], col_max=26)


class Group(TyperGroup):
    """``saliency --help``: what it is, each command in a line, the options."""

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.width = min(formatter.width or 80, 100)
        formatter.write_usage(ctx.command_path, "[OPTIONS] COMMAND [ARGS]...")
        for paragraph in (self.help or "").strip().split("\n\n"):
            formatter.write_paragraph()
            formatter.write_text(_plain(paragraph))
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                first = _plain((command.help or "").strip().split("\n\n")[0])
                rows.append((name, first))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        options = [p.get_help_record(ctx) for p in self.get_params(ctx)]
        with formatter.section("Options"):
            formatter.write_dl([r for r in options if r is not None])


def _plain(text: str) -> str:
    """A docstring's paragraph as plain words: its Rich markup dropped, its lines joined."""
    from rich.text import Text

    return Text.from_markup(" ".join(text.split())).plain


def label(param: Parameter, ctx: Context) -> str:
    """``--out, -o DIR``: an option's names and what its value is (nothing for a flag)."""
    if param.param_type_name == "argument":
        return str(getattr(param, "metavar", None) or (param.name or "").upper())
    names = [n for n in param.opts if n.startswith("--")] + [
        n for n in param.opts if not n.startswith("--")
    ]
    shown = ", ".join(names)
    if getattr(param, "is_flag", False):  # its --no-X shown where it is not the default
        negative = list(getattr(param, "secondary_opts", []))
        return shown + (f" / {negative[0]}" if negative and param.default is not False else "")
    return f"{shown} {metavar(param, ctx)}"


def metavar(param: Parameter, ctx: Context) -> str:
    """What an option's value is: its own metavar, its choices where they are few, else a word
    for its type."""
    name = param.name or ""
    if name in METAVARS:
        return METAVARS[name]
    own: Any = getattr(param, "metavar", None)
    if own:
        return str(own)
    shown = str(param.display_type(ctx)).strip("<>")  # type: ignore[attr-defined]
    if "|" in shown:
        return shown if len(shown) <= 32 else shown.split("|")[0] + "|..."
    return _TYPES.get(shown.split()[0], shown.upper())
