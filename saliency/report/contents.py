"""What a report shows, read from an output folder: one card per image from the manifest (and
any unmerged parts), the comparison figures, and the sanity check's curves and verdicts.

Torch-free: a report is made from files alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ImageError
from ..files.confine import Confinement, is_inside
from ..files.manifest import fold, manifest_files
from ..files.sources import read_regular

# what a row records beyond its base keys is shown on the cards, but for where its raw map sits
HIDDEN_KEYS = ("raw",)
PICTURES = (".png", ".jpg", ".webp")


@dataclass
class Picture:
    """One method's picture of an image (for one target)."""

    method: str
    target: int | None
    target_name: str
    probability: float | None
    path: str  # relative to the output folder
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Card:
    """One input: its photo, prediction, pictures, or the reason it failed."""

    image: str  # as the manifest names it
    photo: Path | None  # the input file, if it can still be found
    sha256: str | None
    model: str | None
    status: str  # ok or error
    error: str | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    nothing_found: list[str] = field(default_factory=list)  # per method that found nothing, why

    @property
    def name(self) -> str:
        return Path(self.image).name

    @property
    def predicted(self) -> str | None:
        return self.top5[0][0] if self.top5 else None


@dataclass(frozen=True)
class Verdict:
    """A method's sanity-check verdict, as ``sanity.json`` holds it."""

    method: str
    first: tuple[float, float]
    last: tuple[float, float]
    baseline: float
    threshold: float
    passes: bool


@dataclass
class Contents:
    """Everything a report of one folder shows."""

    folder: Path
    cards: list[Card]
    comparisons: list[str]  # compare figures, relative to the folder
    strips: list[str]  # the sanity check's map strips, one per image
    sanity_figure: str | None
    verdicts: list[Verdict]
    evaluation_figure: str | None
    leaderboard: Leaderboard | None = None


@dataclass(frozen=True)
class Leaderboard:
    """An evaluation's leaderboard (``evaluation.json``): per method and metric, mean ± s.d."""

    images: int
    metrics: list[str]
    methods: list[str]
    cells: dict[tuple[str, str], tuple[float, float, bool]]  # (method, metric): mean, sd, best
    lower_is_better: dict[str, bool]


def read_contents(folder: Path, inputs_from: Path | None = None) -> Contents:
    """The report's contents of ``folder``. Each photo is looked for where its rows say the run
    read it, then (rows of older runs) by the name they give it under ``inputs_from`` (default:
    the current folder) and beside the folder."""
    rows = fold(manifest_files(folder)).values()
    bases = [inputs_from or Path.cwd(), folder.resolve().parent]
    gate = Confinement(folder)  # the folder and each picture folder resolved once
    cards: dict[str, Card] = {}
    for row in rows:
        image = row.image
        card = cards.get(image)
        if card is None:
            sha256 = (row.source or {}).get("sha256")
            read = (row.source or {}).get("path")  # where the run read it
            places = [Path(read)] if isinstance(read, str) and os.path.isabs(read) else []
            photo = _find(image, places, bases, sha256)
            card = cards[image] = Card(image, photo, sha256, row.model, "ok")
        if row.is_ok and not row.outputs:  # read, and nothing found to explain
            why = row.extra.get("note") or "nothing to explain"
            card.nothing_found.append(f"{row.method}: {why}")
            continue
        if not row.is_ok:
            card.status, card.error = "error", row.error or "failed"
            continue
        if not gate.is_inside(row.outputs[0], follow=True):
            continue  # a row naming a picture outside the folder: foreign, never read
        if not card.top5:
            card.top5 = [(str(t["name"]), float(t["probability"])) for t in row.top5]
        shown = {k: v for k, v in row.extra.items() if k not in HIDDEN_KEYS and v is not None}
        card.pictures.append(
            Picture(
                str(row.method),
                row.target,
                row.target_name or "",
                row.probability,
                row.outputs[0],
                shown,
            )
        )
    for card in cards.values():
        card.pictures.sort(key=lambda p: (p.method, -(p.probability or 0.0)))
    figures = sorted(
        name for name in _found(gate, folder.rglob("*.compare.*"))
        if "thumbs" not in PurePosixPath(name).parts
    )  # fmt: skip
    strips = sorted(_found(gate, (folder / "strips").rglob("*")))
    return Contents(
        folder,
        sorted(cards.values(), key=lambda c: c.image),
        figures,
        strips,
        _figure(folder, "sanity"),
        _verdicts(folder / "sanity.json"),
        _figure(folder, "evaluation"),
        _leaderboard(folder / "evaluation.json"),
    )


def _find(image: str, places: list[Path], bases: list[Path], sha256: object) -> Path | None:
    """The input photo a row names: where the run read it (``places``), else its name under
    each base; only if its content is the one the row recorded: a row names files outside the
    folder, and a crafted one must not bring any of them into a report (its thumbnail would
    copy it into the folder)."""
    if not isinstance(sha256, str):
        return None
    path = Path(image)
    named = [path] if path.is_absolute() else [base / path for base in bases]
    for candidate in [*places, *named]:
        if candidate.is_file():
            try:
                if read_regular(candidate)[1].sha256 == sha256:
                    return candidate
            except ImageError:
                continue
    return None


def _found(gate: Confinement, paths: Iterable[Path]) -> Iterator[str]:
    """The pictures among ``paths`` (found under the gate's folder), as names relative to it,
    that stay inside it (a link leading out is not shown)."""
    for path in paths:
        name = path.relative_to(gate.folder).as_posix()
        if path.suffix in PICTURES and gate.is_inside(name, follow=True):
            yield name


def _figure(folder: Path, stem: str) -> str | None:
    for suffix in PICTURES:
        name = f"{stem}{suffix}"
        if is_inside(folder, name, follow=True) and (folder / name).is_file():
            return name
    return None


def _read_json(path: Path) -> Any:
    """A JSON file of the folder's own (``sanity.json``, ``evaluation.json``), not through a
    link leading out."""
    if not is_inside(path.parent, path.name, follow=True):
        raise ValueError(f"{path} is a link leading outside its folder")
    return json.loads(path.read_text(encoding="utf-8"))


def _verdicts(path: Path) -> list[Verdict]:
    try:
        found = _read_json(path)
    except (OSError, ValueError):
        return []
    out = []
    for item in found.get("verdicts", []) if isinstance(found, dict) else []:
        try:
            out.append(
                Verdict(
                    str(item["method"]),
                    (float(item["first"][0]), float(item["first"][1])),
                    (float(item["last"][0]), float(item["last"][1])),
                    float(item["baseline"]),
                    float(item["threshold"]),
                    bool(item["passes"]),
                )
            )
        except (KeyError, TypeError, ValueError, IndexError):
            continue
    return out


def _leaderboard(path: Path) -> Leaderboard | None:
    try:
        found = _read_json(path)
        rows = found["leaderboard"]
        cells = {
            (str(r["method"]), str(r["metric"])): (
                float(r["mean"]),
                float(r["sd"]),
                bool(r["best"]),
            )
            for r in rows
        }
        return Leaderboard(
            int(found.get("images", 0)),
            list(dict.fromkeys(str(r["metric"]) for r in rows)),
            list(dict.fromkeys(str(r["method"]) for r in rows)),
            cells,
            {str(k): bool(v) for k, v in found.get("lower_is_better", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cell(row: dict[str, Any]) -> tuple[float, float, bool]:
    return float(row["mean"]), float(row["sd"]), bool(row["best"])


def relative_url(target: Path, folder: Path) -> str:
    """A link from a page in ``folder`` to ``target``, percent-encoded from the name's bytes (so
    a file name that is not valid UTF-8 is linked as it is on disk)."""
    from urllib.parse import quote

    relative = Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    return quote(os.fsencode(relative))
