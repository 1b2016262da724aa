"""Settings that a method owns, declared once as :class:`Setting` and read from that one
declaration by the API (keyword arguments), the CLI (named options and ``--set NAME=VALUE``),
``saliency methods``, the fingerprint of a folder run and its manifest rows.

A value is checked where it enters (:meth:`Setting.check`), so a bad one is a ``ValueError``
that names the method, the setting and what it accepts, before any pass runs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import torch

# Names a method's setting may not take: the run's own options, and the keys of every manifest row
RESERVED = frozenset(
    ("smooth", "noise", "seed", "batch_size", "method", "methods", "target", "model", "inputs")
    + ("image", "target_name", "probability", "top5", "outputs", "status", "error", "source")
    + ("fingerprint", "raw")
)


@dataclass(frozen=True)
class Setting:
    """One setting of a method: a keyword of ``explain()``, ``--set NAME=VALUE`` in the command.

    Attributes:
        name: The keyword and ``--set`` name.
        kind: ``int``, ``float``, ``str`` or ``bool``.
        default: The value when none is given.
        help: One line for ``saliency methods``.
        low: The lowest number accepted (inclusive unless ``low_open``).
        high: The highest number accepted (inclusive).
        low_open: Makes the lower bound exclusive.
        choices: A string's accepted values.
        optional: Admits None (the method then finds a value itself, as Grad-CAM finds its
            layer).
        tensor: Admits a tensor too (from Python only, e.g. a custom baseline).
        changes_maps: False for a setting that changes only speed or memory: a folder rerun
            then keeps the pictures made with another value, and rows do not record it.

    Raises:
        ValueError: A default that the setting itself would refuse.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    tensor: bool = False
    changes_maps: bool = True

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"a setting's name must be a lowercase identifier, not {self.name!r}")
        if self.kind not in (int, float, str, bool):
            raise ValueError(f"setting {self.name!r}: kind must be int, float, str or bool")
        if self.default is not None or not self.optional:
            self.check(self.default, "the declaration")

    def accepts(self, tensors: bool = True) -> str:
        """What the setting accepts, in words: ``a whole number >= 1``, ``one of a, b``
        (without ``tensors``, as the command line offers it)."""
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            text = {int: "a whole number", float: "a number", str: "a name", bool: "true or false"}[
                self.kind
            ]
            if self.low is not None and self.high is not None:
                left = "(" if self.low_open else "["
                text += f" in {left}{_number(self.low)}, {_number(self.high)}]"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_number(self.low)}"
            elif self.high is not None:
                text += f" <= {_number(self.high)}"
        if self.optional:
            text += ", or auto"
        if self.tensor and tensors:
            text += ", or a tensor"
        return text

    def check(self, value: Any, owner: str, tensors: bool = True) -> Any:
        """``value`` as this setting holds it (an int for a float setting becomes a float);
        ``ValueError`` naming ``owner`` (the method) and what is accepted, otherwise (a tensor
        offered too only where ``tensors``: not on the command line)."""
        if value is None and self.optional:
            return None
        if self.tensor and isinstance(value, torch.Tensor):
            return value
        checked = self._converted(value)
        if checked is None or not self._in_range(checked):
            accepted = self.accepts(tensors)
            raise ValueError(f"{owner}: {self.name} must be {accepted}, got {_shown(value)}")
        return checked

    def parse(self, text: str, owner: str) -> Any:
        """A value from the command line's text, checked."""
        value: Any = text
        if self.optional and text.lower() in ("", "none", "auto"):
            value = None
        elif self.kind is bool:
            value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            value = value.get(text.lower(), text)
        elif self.kind in (int, float):
            try:
                value = int(text) if self.kind is int else float(text)
            except ValueError:
                value = text
        return self.check(value, owner, tensors=False)

    def _converted(self, value: Any) -> Any:
        if self.kind is bool:
            return value if isinstance(value, bool) else None
        if isinstance(value, bool):
            return None
        if self.kind is int:
            return value if isinstance(value, int) else None
        if self.kind is float:
            return float(value) if isinstance(value, (int, float)) else None
        return value if isinstance(value, str) else None

    def _in_range(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


def plain(value: Any) -> Any:
    """A setting's value as JSON: a tensor (a custom baseline) by the hash of its values."""
    if isinstance(value, torch.Tensor):
        return "tensor:" + tensor_digest(value)
    return value


def tensor_digest(tensor: torch.Tensor, name: str = "value") -> str:
    digest = hashlib.sha256()
    hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def hash_tensor(digest: Any, name: str, tensor: torch.Tensor) -> None:
    """Feed ``tensor`` (name, dtype, shape and bytes) to a hashlib ``digest``."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def described(setting: Setting) -> str:
    """One line for listings: ``steps=32  points on the path (a whole number >= 1)``."""
    default = "auto" if setting.default is None else setting.default
    return f"{setting.name}={default}  {setting.help} ({setting.accepts(tensors=False)})"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)
