"""A manifest row: one picture of an image (``ok``), an input that produced nothing (``error``),
an image in which a method found nothing to explain (``ok`` without outputs: a segmentation
with no class present but its background), or, in a manifest part, the removal of an earlier
row (``dropped``).

Every row has the base keys; an ``ok`` row adds what its method recorded (its settings that change
the maps, SmoothGrad's, its per-sample numbers, where a raw map sits in a container), in
``extra``, kept as they come: a plugin's keys reach the manifest and the report unchanged.

Torch-free, and lenient when reading: a manifest is a file that anyone may have edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OK, ERROR, DROPPED = "ok", "error", "dropped"

BASE_KEYS = (
    "image",
    "model",
    "method",
    "target",
    "target_name",
    "probability",
    "top5",
    "outputs",
    "status",
    "error",
    "source",
    "fingerprint",
)


@dataclass(frozen=True)
class Row:
    """One manifest row. Build one with :meth:`ok`, :meth:`failed` or :meth:`dropped`; read one
    with :meth:`from_dict`."""

    image: str
    status: str
    outputs: tuple[str, ...] = ()
    model: str | None = None
    method: str | None = None
    target: int | None = None
    target_name: str | None = None
    probability: float | None = None
    top5: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    source: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(
        cls,
        image: str,
        model: str,
        method: str,
        prediction: Prediction,
        outputs: list[str],
        source: Mapping[str, Any],
        fingerprint: str,
        extra: Mapping[str, Any],
    ) -> Row:
        """A picture written: its files (the picture first), what it explains and how it was
        made. ``extra`` may not reuse a base key."""
        clash = sorted(set(extra) & set(BASE_KEYS))
        if clash:
            raise ValueError(f"method {method!r} records keys a row has already: {clash}")
        return cls(
            image, OK, tuple(outputs), model, method, prediction.target, prediction.name,
            prediction.probability, tuple(prediction.top5), None, source, fingerprint, extra,
        )  # fmt: skip

    @classmethod
    def nothing(
        cls,
        image: str,
        model: str,
        method: str,
        source: Mapping[str, Any],
        fingerprint: str,
        extra: Mapping[str, Any],
    ) -> Row:
        """An image read and explained in which ``method`` found no target (no class present
        but the background): no picture, and a rerun need not look again."""
        return cls(image, OK, (), model, method, None, None, None, (), None, source, fingerprint,
                   dict(extra))  # fmt: skip

    @classmethod
    def failed(cls, image: str, model: str | None, reason: str) -> Row:
        """An input that produced nothing, and why."""
        return cls(image, ERROR, model=model, error=reason)

    @classmethod
    def dropped(cls, row: Row) -> Row:
        """The part's row that removes ``row`` when parts are merged."""
        return cls(row.image, DROPPED, row.outputs, method=row.method if row.is_ok else None)

    @property
    def is_ok(self) -> bool:
        return self.status == OK

    @property
    def key(self) -> str:
        """What the row is about: its picture (one per image, method and target); for a row
        without outputs, its image and method where it has one (nothing found), else its image
        (an error)."""
        return row_key(self.image, self.outputs, None if self.status == ERROR else self.method)

    def to_dict(self) -> dict[str, Any]:
        """The row as written: every base key (null where it has none) then its extra keys; a
        dropped row only names what it removes."""
        if self.status == DROPPED:
            named = {"method": self.method} if self.method and not self.outputs else {}
            return {"image": self.image, "outputs": list(self.outputs), **named, "status": DROPPED}
        data: dict[str, Any] = {key: getattr(self, key) for key in BASE_KEYS}
        data.update(outputs=list(self.outputs), top5=list(self.top5))
        if self.source is not None:
            data["source"] = dict(self.source)
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """A row as read from a manifest; keys of the wrong type read as absent."""
        outputs = data.get("outputs")
        names = tuple(o for o in outputs if isinstance(o, str)) if isinstance(outputs, list) else ()
        top5 = data.get("top5")
        source = data.get("source")
        return cls(
            image=str(data.get("image")),
            status=str(data.get("status")),
            outputs=names,
            model=_typed(data.get("model"), str),
            method=_typed(data.get("method"), str),
            target=_typed(data.get("target"), int),
            target_name=_typed(data.get("target_name"), str),
            probability=_typed(data.get("probability"), (int, float)),
            top5=tuple(t for t in top5 if isinstance(t, dict)) if isinstance(top5, list) else (),
            error=_typed(data.get("error"), str),
            source=source if isinstance(source, dict) else None,
            fingerprint=_typed(data.get("fingerprint"), str),
            extra={k: v for k, v in data.items() if k not in BASE_KEYS},
        )


@dataclass(frozen=True)
class Prediction:
    """What an ok row says of the model's answer: the class explained and the top five."""

    target: int
    name: str
    probability: float | None  # None where the target is no class (a similarity)
    top5: list[dict[str, Any]]


def row_key(image: str, outputs: tuple[str, ...] | list[str], method: str | None = None) -> str:
    """The key of a row about ``image`` with ``outputs`` (see :attr:`Row.key`)."""
    if outputs:
        return "output:" + outputs[0]
    return f"nothing:{method}:{image}" if method else f"image:{image}"


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None
