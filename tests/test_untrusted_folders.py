"""Untrusted output folders (issue 33): what a folder's files name is followed only inside it.

Each test crafts a folder (manifest rows naming absolute paths, ``..`` and links out; links in
place of pictures, of the manifest, of the lock and of folders; shard parts with such rows),
runs the real commands on it, and checks byte for byte that nothing outside the folder changed,
while the folder's own work goes on. The files outside are the victims: pictures of ours (so that
a check of our marker through a link would say "replace it") and a text file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from saliency import UnsafePathError, read_maps
from saliency.files.confine import inside, is_inside
from saliency_cli.app import app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: two photos (one in a subfolder), Gradient, raw maps as .npy files."""
    root = tmp_path_factory.mktemp("clean")
    photo = Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((64, 48))
    (root / "in" / "sub").mkdir(parents=True)
    photo.save(root / "in" / "a.jpg")
    photo.rotate(90).save(root / "in" / "sub" / "b.png")
    result = run("explain", root / "in", "--out", root / "out", "--method", "gradient",
                 "--save-raw", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def work(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the clean run, with victims outside its output folder; the current folder is
    the copy's root (the manifest names the photos relative to it)."""
    root = tmp_path / "work"
    shutil.copytree(clean, root, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / "out" / "a.gradient.png", outside / "victim.png")  # carries our marker
    (outside / "notes.txt").write_text("keep me\n")
    shutil.copy(root / "out" / "a.gradient.png", root / "victim.png")  # beside the folder
    monkeypatch.chdir(root)
    return root


def snapshot(tmp_path: Path) -> dict[str, object]:
    """Every file and link under ``tmp_path`` but the output folder: name -> bytes or target."""
    seen: dict[str, object] = {}
    for current, folders, names in os.walk(tmp_path):
        here = Path(current)
        if here == tmp_path / "work" / "out" or tmp_path / "work" / "out" in here.parents:
            folders[:] = []
            continue
        for name in names + [f for f in folders if (here / f).is_symlink()]:
            path = here / name
            rel = path.relative_to(tmp_path).as_posix()
            seen[rel] = ("link", os.readlink(path)) if path.is_symlink() else path.read_bytes()
    return seen


def manifest_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def crafted_row(out: Path, outputs: list[str]) -> dict:
    """A row of photo a.jpg naming ``outputs``, from content the photo no longer has: a rerun
    drops it, which deletes the files of a row that no longer holds."""
    row = dict(manifest_rows(out)[0])
    assert row["image"].endswith("a.jpg")
    row["outputs"] = outputs
    row["source"] = {**row["source"], "sha256": "0" * 64, "mtime_ns": 1}
    return row


def change_photo(work: Path) -> None:
    """New content for a.jpg, so the rerun redoes it and drops its earlier rows."""
    photo = Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((64, 48))
    photo.save(work / "in" / "a.jpg")


def escape_names(work: Path) -> list[str]:
    """Names that lead outside the output folder: absolute, ``..``, and through a link."""
    (work / "out" / "door").symlink_to(work.parent / "outside", target_is_directory=True)
    return [
        str(work.parent / "outside" / "victim.png"),
        "../victim.png",
        "../../outside/notes.txt",
        "door/victim.png",
        "sub/../../victim.png",
    ]


@pytest.mark.parametrize("where", ["manifest", "part"])
def test_rows_naming_files_outside_are_never_acted_on(work: Path, tmp_path: Path, where: str):
    out = work / "out"
    names = escape_names(work)
    rows = [crafted_row(out, [name, name]) for name in names]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if where == "manifest":
        with open(out / "results.jsonl", "a") as handle:
            handle.write(text)
    else:  # a shard's part, as a sharded run leaves it
        (out / "results.part.000001.0-of-2.jsonl").write_text(text)
    change_photo(work)
    before = snapshot(tmp_path)

    assert set(read_maps(out)) == {"a.gradient", "sub/b.gradient"}  # the crafted rows: foreign
    if where == "part":
        merged = run("merge", out)
        assert merged.exit_code == 0, merged.output
    reran = run("explain", "in", "--out", out, "--method", "gradient", "--save-raw", "-q")
    assert reran.exit_code == 0, reran.output
    reported = run("report", out)
    assert reported.exit_code == 0, reported.output

    assert snapshot(tmp_path) == before
    assert (out / "a.gradient.png").is_file() and (out / "sub" / "b.gradient.png").is_file()
    kept = {tuple(r["outputs"]) for r in manifest_rows(out)}
    assert ("a.gradient.png", "a.gradient.npy", "a.geometry.json") in kept
    page = (out / "report.html").read_text()
    assert "victim" not in page and "notes" not in page  # nothing outside shown
    thumbs = {p.name for p in (out / "thumbs").rglob("*.jpg")}
    assert not any("victim" in name or "notes" in name for name in thumbs)


def test_a_picture_that_is_a_link_is_replaced_never_written_through(work: Path, tmp_path: Path):
    out = work / "out"
    (out / "a.gradient.png").unlink()
    (out / "a.gradient.png").symlink_to(work.parent / "outside" / "victim.png")
    (out / "sub" / "b.gradient.png").unlink()
    (out / "sub" / "b.gradient.png").symlink_to(work.parent / "outside" / "notes.txt")
    before = snapshot(tmp_path)

    # the rows still name them, but a link is not a fresh picture: both are redone in place
    reran = run("explain", "in", "--out", out, "--method", "gradient", "--save-raw", "-q")
    assert reran.exit_code == 0, reran.output
    assert snapshot(tmp_path) == before
    for name in ("a.gradient.png", "sub/b.gradient.png"):
        assert not (out / name).is_symlink() and Image.open(out / name).size == (64, 48)


def test_a_link_at_an_output_path_no_row_names_is_a_strangers_file(work: Path, tmp_path: Path):
    out = work / "out"
    (out / "results.jsonl").unlink()  # no row names the pictures now
    (out / "a.gradient.png").unlink()
    (out / "a.gradient.png").symlink_to(work.parent / "outside" / "victim.png")  # our marker
    before = snapshot(tmp_path)
    reran = run("explain", "in", "--out", out, "--method", "gradient")
    assert reran.exit_code == 1  # that photo refused, named; the other done
    assert "a.gradient.png exists and was not written by saliency" in reran.output
    assert (out / "a.gradient.png").is_symlink() and snapshot(tmp_path) == before
    overwritten = run("explain", "in", "--out", out, "--method", "gradient", "--overwrite")
    assert overwritten.exit_code == 0, overwritten.output
    assert not (out / "a.gradient.png").is_symlink() and snapshot(tmp_path) == before


@pytest.mark.parametrize("own", ["results.jsonl", ".saliency.lock"])
def test_the_folders_own_files_as_links_are_refused(work: Path, tmp_path: Path, own: str):
    out = work / "out"
    target = work.parent / "outside" / "manifest.jsonl"
    target.write_text((out / "results.jsonl").read_text())  # a valid manifest: rows of ours
    (out / own).unlink()
    (out / own).symlink_to(target)
    before = snapshot(tmp_path)
    commands = [("explain", "in", "--out", out, "--method", "gradient", "--overwrite")]
    if own == "results.jsonl":
        commands += [("report", out), ("merge", out)]
        with pytest.raises(UnsafePathError, match="results.jsonl"):
            read_maps(out)
    for command in commands:
        result = run(*command)
        assert result.exit_code == 2, (command, result.output)
        assert own in result.output and "link" in result.output
        assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before


def test_a_part_that_is_a_link_is_refused(work: Path, tmp_path: Path):
    out = work / "out"
    target = work.parent / "outside" / "part.jsonl"
    target.write_text((out / "results.jsonl").read_text())
    (out / "results.part.000001.0-of-2.jsonl").symlink_to(target)
    before = snapshot(tmp_path)
    merged = run("merge", out)
    assert merged.exit_code == 2 and "results.part.000001.0-of-2.jsonl" in merged.output
    assert snapshot(tmp_path) == before


def test_folders_that_are_links_leading_out_are_neither_written_nor_cleaned(
    work: Path, tmp_path: Path
):
    out = work / "out"
    outside = work.parent / "outside"
    # the photos' subfolder in the output, the raw maps' containers, the report's thumbnails
    shutil.rmtree(out / "sub")
    (out / "sub").symlink_to(outside, target_is_directory=True)
    (outside / "maps").mkdir()
    (outside / "maps" / "0123456789ab-00000.safetensors").write_bytes(b"a stranger's container")
    (out / "maps").symlink_to(outside / "maps", target_is_directory=True)
    (outside / "thumbs" / "pictures").mkdir(parents=True)
    (outside / "thumbs" / "pictures" / "old.jpg").write_bytes(b"a stranger's thumbnail")
    (out / "thumbs").symlink_to(outside / "thumbs", target_is_directory=True)
    before = snapshot(tmp_path)

    contained = run("explain", "in", "--out", out, "--method", "gradient", "--save-raw",
                    "--raw-format", "safetensors", "--overwrite")  # fmt: skip
    assert contained.exit_code == 2 and "maps/" in contained.output  # refused before any work
    assert "link leading outside" in contained.output
    reran = run("explain", "in", "--out", out, "--method", "gradient", "--save-raw", "--overwrite")
    assert reran.exit_code == 1  # the photo whose outputs would go through the link: refused
    assert "sub/b.png" in reran.output and "link leading outside" in reran.output
    assert (out / "a.gradient.png").is_file()  # the other photo done
    reported = run("report", out)
    assert reported.exit_code == 0, reported.output
    merged = run("merge", out)
    assert merged.exit_code == 0, merged.output
    assert snapshot(tmp_path) == before


def test_a_clean_folder_works_as_before(work: Path):
    out = work / "out"
    pictures = {p: p.read_bytes() for p in out.rglob("*.png")}
    reran = run("explain", "in", "--out", out, "--method", "gradient", "--save-raw")
    assert reran.exit_code == 0 and "2 already done" in reran.output
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == pictures
    assert set(read_maps(out)) == {"a.gradient", "sub/b.gradient"}
    reported = run("report", out)
    assert reported.exit_code == 0 and "2 images, 0 failed, 4 thumbnails" in reported.output


def test_the_gate_itself(tmp_path: Path):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (folder / "in_link").symlink_to(folder / "sub", target_is_directory=True)
    (folder / "out_link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (folder / "file_out").symlink_to(tmp_path / "elsewhere" / "x")
    assert inside(folder, "sub/a.png") == folder / "sub" / "a.png"
    assert is_inside(folder, "in_link/a.png", follow=True)  # a link that stays inside
    assert is_inside(folder, "file_out")  # the link itself may be replaced or removed
    for bad in ("", "/etc/passwd", "../x", "sub/../../x", "out_link/x", "a\x00b", "~/x"):
        assert not is_inside(folder, bad), bad
    assert not is_inside(folder, "file_out", follow=True)  # but not read through


def test_compare_and_sanity_write_nothing_through_a_folder_that_leads_out(
    work: Path, tmp_path: Path
) -> None:
    """The same rule for the other writing commands: compare's figure of a photo in a
    subfolder that is a link leading out fails that photo alone; sanity's ``strips/`` leading
    out refuses the check before anything is written."""
    outside = work.parent / "outside"
    compared_out, checked_out = work / "compared", work / "checked"
    for folder, name in ((compared_out, "sub"), (checked_out, "strips")):
        folder.mkdir()
        (folder / name).symlink_to(outside, target_is_directory=True)

    def beyond_the_folders() -> dict[str, object]:
        own = ("work/compared/", "work/checked/")
        return {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(own)}

    before = beyond_the_folders()
    compared = run("compare", "in", "--out", compared_out, "--method", "gradient")
    assert compared.exit_code == 1, compared.output  # sub/b.png refused, a.jpg drawn
    assert "link leading outside" in compared.output and (compared_out / "a.compare.png").is_file()
    checked = run("sanity", "in/a.jpg", "--out", checked_out, "--method", "gradient",
                  "--granularity", "stage")  # fmt: skip
    assert checked.exit_code == 2 and "strips/" in checked.output, checked.output
    assert not (checked_out / "sanity.json").exists()
    assert beyond_the_folders() == before
