"""The method registry: built-in methods, one module each in :mod:`saliency.methods`, and methods
from other packages through the entry-point group ``saliency.methods``.

Names are known without importing anything heavy (module names and entry-point names), so the
CLI can offer them at once; a method's module is imported when the method is first asked for.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .method import Method

ENTRY_POINT_GROUP = "saliency.methods"
_BUILTIN_PACKAGE = "saliency.methods"
_REGISTRY: dict[str, Method] = {}
_BROKEN: dict[str, str] = {}  # plugin name -> why it could not be loaded

M = TypeVar("M", bound="type[Method]")


def register_method(cls: M) -> M:
    """Class decorator: register a [Method][saliency.Method] subclass under its ``name``.

    Args:
        cls: The method's class.

    Returns:
        The class, unchanged.

    Raises:
        TypeError: ``cls`` is not a ``Method`` subclass.
        ValueError: The name is not a lowercase identifier, is ``all``, or is taken by another
            class; ``summary`` or ``cost`` is missing; or a setting is declared wrong.
    """
    from .method import Method

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register_method takes a Method subclass, not {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"a method's name must be a lowercase identifier, got {name!r}")
    if name == "all":
        raise ValueError("'all' is reserved: it means every method")
    for attribute in ("summary", "cost"):
        if not isinstance(getattr(cls, attribute, None), str):
            raise ValueError(f"method {name!r} needs a one-line {attribute} (a str)")
    method = cls()
    _check_settings(name, method)
    known = _REGISTRY.get(name)
    same = known is not None and (type(known).__module__, type(known).__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if known is not None and not same:
        raise ValueError(f"method {name!r} is registered already, by {type(known).__module__}")
    _REGISTRY[name] = method
    return cls


def _check_settings(name: str, method: Method) -> None:
    from .settings import RESERVED, Setting

    own = method.settings
    if not isinstance(own, tuple) or not all(isinstance(s, Setting) for s in own):
        raise ValueError(f"method {name!r}: settings must be a tuple of saliency.Setting")
    names = [s.name for s in method.all_settings]
    for setting in names:
        if setting in RESERVED:
            raise ValueError(f"method {name!r}: the setting name {setting!r} is reserved")
        if names.count(setting) > 1:
            raise ValueError(f"method {name!r} declares the setting {setting!r} twice")


@cache
def _builtin_names() -> tuple[str, ...]:
    """The modules of :mod:`saliency.methods`, listed once: they do not change in a process."""
    package = importlib.import_module(_BUILTIN_PACKAGE)
    return tuple(
        sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
    )


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    """Every method's name, built-in then plugins, without importing any method.

    Returns:
        The names, in listing order: the built-in methods, then the plugins' (entry points of
        the ``saliency.methods`` group) sorted.
    """
    names = _builtin_names()
    return [*names, *sorted(n for n in _plugins() if n not in names)]


def _load(name: str) -> Method | None:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _builtin_names():
        importlib.import_module(f"{_BUILTIN_PACKAGE}.{name}")
    else:
        plugin = _plugins().get(name)
        if plugin is None:
            return None
        try:
            loaded = plugin.load()
            if isinstance(loaded, type) and name not in _REGISTRY:
                register_method(loaded)
        except Exception as exc:
            _BROKEN[name] = f"{type(exc).__name__}: {exc}"
            raise ValueError(
                f"method {name!r} (from {plugin.value}) could not be loaded: {_BROKEN[name]}"
            ) from exc
        if name not in _REGISTRY:
            raise ValueError(f"entry point {name!r} ({plugin.value}) registered no method {name!r}")
    return _REGISTRY.get(name)


def get_method(name: str | Method) -> Method:
    """A method by name, case-insensitively.

    Args:
        name: A method's name, or a ``Method`` (returned as it is).

    Returns:
        The registered method (built-in methods and plugins are imported on first use).

    Raises:
        ValueError: An unknown name; the message lists the valid ones.
    """
    from .method import Method

    if isinstance(name, Method):
        return name
    key = name.strip().lower() if isinstance(name, str) else None
    method = _load(key) if key else None
    if method is None:
        valid = ", ".join(m.name for m in all_methods())
        raise ValueError(f"unknown method {name!r}; valid methods: {valid}")
    return method


def all_methods() -> list[Method]:
    """Every method, loaded, in listing order. A plugin that fails to load is left out with a
    warning that says why (asking for it by name raises the error)."""
    for name in method_names():
        try:
            _load(name)
        except ValueError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
    return sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name))


def quick_methods(provides: frozenset[str] | None = None) -> list[Method]:
    """Every method for a model whose kind provides ``provides`` (None: any) but the slow ones
    (a forward per channel, window or mask): what a look at every method in a few seconds can
    take."""
    return [m for m in all_methods() if not m.slow and m.applies_to(provides)]


def expand_methods(
    names: list[str] | tuple[str, ...], provides: frozenset[str] | None = None
) -> tuple[str, ...]:
    """Method names with ``all`` expanded to every method for a model whose kind provides
    ``provides`` (see ``Method.needs``; None: any), checked, duplicates dropped."""
    chosen: list[str] = []
    for name in names:
        expanded = (
            [m.name for m in all_methods() if m.applies_to(provides)]
            if name.strip().lower() == "all"
            else [get_method(name).name]
        )
        chosen += [n for n in expanded if n not in chosen]
    return tuple(chosen)
