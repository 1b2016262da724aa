"""Writing ``report.html``: the cards' data as JSON inside one static page (Jinja2 template, CSS
and script inline), with thumbnails beside it. The page needs no server and no network; the
script draws only the cards of the page in view, so 10,000 images open as fast as 50."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files.confine import Confinement
from ..files.manifest import json_text
from ..files.outputs import write_atomic
from .contents import Card, Contents, read_contents, relative_url
from .thumbnails import Thumbnail, make_thumbnails, prune, thumbnail_name

REPORT = "report.html"
TEMPLATES = Path(__file__).parent / "template"


@dataclass(frozen=True)
class Written:
    """What :func:`write_report` wrote."""

    path: Path
    cards: int
    failed: int
    thumbnails: int
    # photos of cards that read their photo, neither found where the rows say (moved, changed)
    # nor kept as a thumbnail from an earlier report: those cards show no photo
    unfound: tuple[str, ...] = ()


def write_report(
    folder: Path, inputs_from: Path | None = None, title: str | None = None
) -> Written:
    """Write ``folder/report.html`` (and its thumbnails) for the outputs in ``folder``.
    ``inputs_from``: where relative input paths of the manifest start (default: here)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    contents = read_contents(folder, inputs_from)
    gate = Confinement(folder)  # a thumbs/ folder that is a link leading out gets no thumbnails
    wanted = {
        key: thumb for key, thumb in _thumbnails(contents).items()
        if gate.is_inside(thumb.path.relative_to(folder).as_posix())
    }  # fmt: skip
    made = {t.path: t for t in make_thumbnails(wanted.values())}
    prune(folder, set(made))
    data = [_card(card, i, folder, wanted, made) for i, card in enumerate(contents.cards)]
    html = _render(contents, data, title or folder.resolve().name, (wanted, made))
    path = folder / REPORT
    # a name that is not UTF-8 shows its stray bytes as U+FFFD; its links are percent-encoded
    write_atomic(path, lambda tmp: tmp.write_text(html, encoding="utf-8", errors="replace"))
    failed = sum(1 for card in contents.cards if card.status != "ok")
    unfound = tuple(
        card.image for card, shown in zip(contents.cards, data, strict=True)
        if card.status == "ok" and card.sha256 and shown["photo"] is None
    )  # fmt: skip
    return Written(path, len(contents.cards), failed, len(made), unfound)


def _thumbnails(contents: Contents) -> dict[tuple[str, str], Thumbnail]:
    """Per (kind, key): the thumbnail of each photo (by content) and each picture."""
    folder = contents.folder
    wanted: dict[tuple[str, str], Thumbnail] = {}
    for card in contents.cards:
        if card.sha256:  # named by content: one made earlier is this photo's
            path = folder / thumbnail_name("photos", card.sha256[:20])
            if card.photo is not None:
                wanted[("photo", card.image)] = Thumbnail(card.photo, path)
            elif path.is_file() and not path.is_symlink():  # photo gone: its thumbnail kept
                wanted[("photo", card.image)] = Thumbnail(path, path)
        for picture in card.pictures:
            source = folder / picture.path
            path = folder / thumbnail_name("pictures", picture.path.rsplit(".", 1)[0])
            wanted[("picture", picture.path)] = Thumbnail(source, path)
    for figure in contents.comparisons:
        path = folder / thumbnail_name("comparisons", figure.rsplit(".", 1)[0])
        wanted[("comparison", figure)] = Thumbnail(folder / figure, path)
    for strip in contents.strips:
        path = folder / thumbnail_name("strips", strip.rsplit(".", 1)[0])
        wanted[("strip", strip)] = Thumbnail(folder / strip, path)
    return wanted


def _image(
    kind: str,
    key: str,
    full: Path | None,
    folder: Path,
    wanted: dict[tuple[str, str], Thumbnail],
    made: dict[Path, Thumbnail],
) -> dict[str, Any] | None:
    """A picture as the page links it: full size and thumbnail (with its size), if readable."""
    planned = wanted.get((kind, key))
    thumb = made.get(planned.path) if planned is not None else None
    if thumb is None or not thumb.width:
        return None
    return {
        "full": relative_url(full, folder) if full is not None else None,
        "thumb": relative_url(thumb.path, folder),
        "w": thumb.width,
        "h": thumb.height,
    }


def _card(
    card: Card,
    index: int,
    folder: Path,
    wanted: dict[tuple[str, str], Thumbnail],
    made: dict[Path, Thumbnail],
) -> dict[str, Any]:
    pictures = []
    for picture in card.pictures:
        image = _image("picture", picture.path, folder / picture.path, folder, wanted, made)
        pictures.append(
            {
                "method": picture.method,
                "target": picture.target,
                "class": picture.target_name,
                "p": picture.probability,
                "options": picture.options,
                "image": image,
            }
        )
    return {
        "id": index,
        "image": card.image,
        "name": card.name,
        "status": card.status,
        "error": card.error,
        "nothing_found": sorted(card.nothing_found),
        "model": card.model,
        "class": card.predicted,
        "p": card.top5[0][1] if card.top5 else None,
        "top5": card.top5,
        "photo": _image("photo", card.image, card.photo, folder, wanted, made),
        "pictures": pictures,
    }


def _render(
    contents: Contents,
    cards: list[dict[str, Any]],
    title: str,
    made: tuple[dict[tuple[str, str], Thumbnail], dict[Path, Thumbnail]],
) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    folder = contents.folder
    comparisons = [
        {"name": figure, "image": _image("comparison", figure, folder / figure, folder, *made)}
        for figure in contents.comparisons
    ]
    strips = [
        {"name": strip, "image": _image("strip", strip, folder / strip, folder, *made)}
        for strip in contents.strips
    ]
    # inside <script type="application/json">, a "<" could end the element or open a comment;
    # JSON outside strings has none, and inside strings it may be written \u003c
    data = json_text(cards, separators=(",", ":")).replace("<", "\\u003c")
    return environment.get_template("report.html.j2").render(
        title=title,
        data=data,
        count=len(cards),
        failed=sum(1 for c in cards if c["status"] != "ok"),
        comparisons=comparisons,
        strips=strips,
        sanity_figure=contents.sanity_figure,
        verdicts=contents.verdicts,
        evaluation_figure=contents.evaluation_figure,
        leaderboard=contents.leaderboard,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        script=(TEMPLATES / "report.js").read_text(encoding="utf-8"),
    )
