"""The kinds of model: built-in ones, one module each in :mod:`saliency.tasks` (a module that
registers a :class:`~saliency.tasks.kind.Kind`), and kinds from other packages through the
entry-point group ``saliency.kinds``, loaded when first asked for."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .kind import Kind, Loaded, Request

ENTRY_POINT_GROUP = "saliency.kinds"
_REGISTRY: dict[str, Kind] = {}
_FRAMEWORK = {"kind", "plan", "registry"}  # modules of the package that are no kind

K = TypeVar("K", bound="type[Kind]")


def register_kind(cls: K) -> K:
    """Class decorator: register a [Kind][saliency.Kind] subclass under its ``name``.

    Raises:
        TypeError: ``cls`` is not a ``Kind`` subclass.
        ValueError: The name is not a lowercase identifier, or is another class's; no summary.
    """
    from .kind import NEEDS, Kind

    if not (isinstance(cls, type) and issubclass(cls, Kind)):
        raise TypeError(f"register_kind takes a Kind subclass, not {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"a kind's name must be a lowercase identifier, got {name!r}")
    if not isinstance(getattr(cls, "summary", None), str):
        raise ValueError(f"kind {name!r} needs a one-line summary (a str)")
    unknown = set(cls.provides) - set(NEEDS)
    if unknown:
        raise ValueError(f"kind {name!r} provides {sorted(unknown)}; known: {', '.join(NEEDS)}")
    known = _REGISTRY.get(name)
    if known is not None and type(known).__qualname__ != cls.__qualname__:
        raise ValueError(f"kind {name!r} is registered already, by {type(known).__module__}")
    _REGISTRY[name] = cls()
    return cls


@cache
def _load_builtins() -> None:
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in _FRAMEWORK:
            importlib.import_module(f"{__package__}.{module.name}")


@cache
def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def all_kinds() -> list[Kind]:
    """Every kind, in their order."""
    _load_builtins()
    _load_plugins()
    return sorted(_REGISTRY.values(), key=lambda k: (k.order, k.name))


def get_kind(name: str) -> Kind:
    """The kind by name; ``ValueError`` naming the kinds there are."""
    kinds = {k.name: k for k in all_kinds()}
    if name not in kinds:
        raise ValueError(f"unknown kind of model {name!r}; kinds: {', '.join(kinds)}")
    return kinds[name]


def recognized(source: str, arch: str) -> Kind:
    """The kind of a model by its name: the first kind that recognizes it, else a classifier."""
    for kind in all_kinds():
        if kind.recognizes(source, arch):
            return kind
    return get_kind("classification")


def implied(options: list[str]) -> Kind | None:
    """The kind that the given request options ask for (an embedding for a reference photo)."""
    return next((k for k in all_kinds() if k.implied_by & set(options)), None)


def kinds_providing(needs: frozenset[str]) -> list[Kind]:
    """The kinds whose models give everything in ``needs``."""
    return [k for k in all_kinds() if needs <= k.provides]


def check_request(kind: Kind, loaded: Loaded, request: Request) -> None:
    """Refuse the options ``kind`` does not take, naming the kinds that do."""
    from .kind import FLAGS

    for option in request.given():
        if option not in kind.takes:
            takers = [k.name for k in all_kinds() if option in k.takes]
            whose = " or ".join(takers) if takers else "no"
            raise ValueError(
                f"{FLAGS[option]} is for a {whose} model; {loaded.name} is a {kind.name} model"
            )
