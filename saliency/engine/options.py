"""How the chosen methods run: SmoothGrad, the batch size and the methods' own settings, checked
against what the chosen methods declare (see :class:`~saliency.engine.settings.Setting`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .method import Method
from .registry import all_methods
from .settings import Setting, plain


@dataclass(frozen=True)
class MethodOptions:
    """How the chosen methods run, as [saliency.explain_batch][] and the checks take it.

    Attributes:
        smooth: SmoothGrad's number of noisy copies (0: off).
        noise: SmoothGrad's noise, as a fraction of each input's range.
        seed: Fixes SmoothGrad's draws and random methods' masks.
        batch_size: The most inputs per pass, also when SmoothGrad or a method's own passes
            expand the batch.
        settings: The values of the methods' own settings by name, each applying to every
            chosen method that declares it; the others take their defaults.
    """

    smooth: int = 0
    noise: float = 0.15
    seed: int = 0
    batch_size: int = 32
    settings: Mapping[str, Any] = field(default_factory=dict)

    def check(self, methods: Sequence[Method]) -> MethodOptions:
        """These options with every setting checked by each chosen method that declares it.

        Args:
            methods: The methods chosen.

        Returns:
            The options, each setting's value converted as its setting says.

        Raises:
            ValueError: A bad value (naming the method and what it accepts), or a setting
                that no chosen method has (naming the methods that have it).
        """
        smooth, noise = self.smooth, self.noise
        if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
            raise ValueError(f"smooth must be a whole number of samples >= 0, got {smooth!r}")
        if smooth and not (isinstance(noise, (int, float)) and 0.0 < float(noise) < float("inf")):
            raise ValueError(f"noise must be a positive fraction of the input range, got {noise!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(f"batch_size must be a whole number, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        checked = {}
        for name, value in self.settings.items():
            for method, setting in owners(methods, name):
                checked[name] = setting.check(value, method.name)
        checked_options = replace(self, settings=checked)
        for method in methods:
            method.check_settings(checked_options.of(method))
        return checked_options

    def of(self, method: Method) -> dict[str, Any]:
        """Every setting of ``method``: the value given, or its default."""
        return {s.name: self.settings.get(s.name, s.default) for s in method.all_settings}

    @property
    def layer(self) -> str | None:
        """The feature-map layer asked for (None: found automatically)."""
        layer = self.settings.get("layer")
        return layer if isinstance(layer, str) else None

    def only_for(self, methods: Sequence[Method]) -> MethodOptions:
        """A copy without the settings that none of ``methods`` has: for running some of the
        methods these options were given for (a rerun redoing only those whose maps changed)."""
        own = {s.name for m in methods for s in m.all_settings}
        return replace(self, settings={k: v for k, v in self.settings.items() if k in own})

    def with_settings(self, **values: Any) -> MethodOptions:
        """A copy with these settings given too."""
        return replace(self, settings={**self.settings, **values})


class UnusedSettingError(ValueError):
    """A setting given that none of the chosen methods has: a typo, or a forgotten method."""

    def __init__(self, name: str, methods: Sequence[str]) -> None:
        self.name = name
        self.users = setting_users(name)
        chosen = listed(list(methods)) or "no method"
        if self.users:
            hint = f"{name} is used only by {self.described_users}, not by {chosen}"
        else:
            hint = f"unknown setting {name!r}; " + _known_settings()
        super().__init__(hint)

    @property
    def described_users(self) -> str:
        """The methods that have the setting, as a sentence lists them."""
        return listed(self.users)


def listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: names as a sentence lists them."""
    return " and ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


def owners(methods: Sequence[Method], name: str) -> list[tuple[Method, Setting]]:
    """The chosen methods that declare the setting ``name``, each with its declaration;
    :class:`UnusedSettingError` if none does."""
    found = [(m, s) for m in methods for s in m.all_settings if s.name == name]
    if not found:
        raise UnusedSettingError(name, [m.name for m in methods])
    return found


def setting_users(name: str) -> list[str]:
    """The registered methods that declare a setting called ``name``."""
    return [m.name for m in all_methods() if any(s.name == name for s in m.all_settings)]


def _known_settings() -> str:
    names = sorted({s.name for m in all_methods() for s in m.all_settings})
    return "the methods' settings are " + ", ".join(names) + " (see 'saliency methods')"


def resolved(
    options: MethodOptions, methods: Sequence[Method], model: nn.Module, probe: torch.Tensor
) -> MethodOptions:
    """``options`` checked for ``methods``, with the layer of those that explain one resolved on
    ``probe`` (an input of the model's kind): every batch then explains the same layer, and a
    bad setting or layer name is a ``ValueError`` before any work."""
    from .layers import resolve_layer
    from .state import explanation_mode

    options = options.check(methods)
    if not any(m.uses_layer for m in methods):
        return options
    with explanation_mode(model):
        return options.with_settings(layer=resolve_layer(model, probe, options.layer))


def method_settings(method: Method, options: MethodOptions) -> dict[str, Any]:
    """What ``method``'s maps depend on among its settings, as JSON (a tensor by its hash), and
    the run's seed if it draws at random: the part of a folder run's fingerprint and of its
    manifest rows that the method owns."""
    values = options.of(method)
    used = {s.name: plain(values[s.name]) for s in method.depends_on}
    if method.random:
        used["seed"] = options.seed
    return used


def parse_settings(methods: Sequence[Method], pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts (the command line's ``--set``) as setting values, each parsed and
    checked by the chosen methods that declare it; ``ValueError`` for a malformed pair, a
    setting given twice, a bad value, or one that no chosen method has."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        name = name.strip().lower()
        if not equals or not name:
            raise ValueError(f"--set takes NAME=VALUE, got {pair!r}")
        if name in values:
            raise ValueError(f"the setting {name} is given twice")
        for method, setting in owners(methods, name):
            values[name] = setting.parse(text.strip(), method.name)
    return values
