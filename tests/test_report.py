"""The HTML report (issue 16), opened in a real browser: the system Chromium driven by Playwright.

Chromium is Debian's package (``.ci/run`` installs it); Playwright's own downloads are not
reachable here. Without it the tests skip, unless ``SALIENCY_REQUIRE_CHROMIUM`` is set (CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"


class Page:
    """A page of the report with every console error, page error and failed request noted."""

    def __init__(self, browser: Any, path: Path, width: int = 1280, height: int = 4000) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None,
        )  # fmt: skip
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.url = path.resolve().as_uri()

    def open(self, fragment: str = "") -> Any:
        started = time.perf_counter()
        self.page.goto(self.url + fragment)
        self.page.wait_for_selector("body[data-ready]", state="attached")
        self.seconds = time.perf_counter() - started
        return self.page

    def images_decoded(self) -> list[str]:
        """Wait for the images in view; the sources of any that did not decode."""
        self.page.wait_for_function(
            "[...document.querySelectorAll('#cards img')].every(i => i.complete)", timeout=20000
        )
        return self.page.evaluate(
            "[...document.querySelectorAll('#cards img')]"
            ".filter(i => !(i.naturalWidth > 0)).map(i => i.src)"
        )

    def cards(self) -> list[str]:
        return self.page.locator("#cards > li h3").all_text_contents()


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run over sample_images/ and a file that is not an image, with --report."""
    root = tmp_path_factory.mktemp("report")
    photos = root / "photos"
    shutil.copytree(SAMPLES, photos, ignore=shutil.ignore_patterns("*.md"))
    (photos / "broken.jpg").write_bytes(b"not a photo")
    out = root / "out"
    command = [sys.executable, "-m", "saliency_cli", "explain", str(photos), "--out", str(out),
               "--method", "guided", "--method", "gradcam", "--target", "topk:2",
               "--report"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 1, done.stderr  # the broken file
    assert "report: " in done.stderr and (out / "report.html").is_file()
    return out


def test_a_report_of_the_sample_photos(browser: Any, sample_report: Path) -> None:
    report = Page(browser, sample_report / "report.html")
    page = report.open()
    names = report.cards()
    assert sorted(names) == sorted([*(p.name for p in SAMPLES.glob("*.*g")), "broken.jpg"])
    assert report.images_decoded() == []
    # a photo and 2 methods x top-2 per image, each with alt text naming image, method, class
    alts = page.eval_on_selector_all("#cards img", "els => els.map(e => e.alt)")
    assert len(alts) == 5 * 5 and all(alt.split(":")[0] in names for alt in alts)
    assert sum("gradcam map for class" in alt for alt in alts) == 10
    # the failed input says why
    failed = page.locator(".card.error")
    assert failed.count() == 1 and "broken.jpg" in failed.locator("h3").text_content()
    assert "not an image" in failed.locator(".reason").text_content()
    # top-5 bars
    assert page.locator(".card:not(.error) .top5 li").count() == 25
    assert report.problems == []


def test_filters_search_sort_and_the_link_that_keeps_them(
    browser: Any, sample_report: Path
) -> None:
    report = Page(browser, sample_report / "report.html")
    page = report.open()
    page.fill("#q", "chel")
    assert report.cards() == ["chelsea.png"]
    page.fill("#q", "")
    page.select_option("#status", "error")
    assert report.cards() == ["broken.jpg"]
    page.select_option("#status", "")
    page.select_option("#method", "gradcam")
    labels = page.locator("#cards .pic span").all_text_contents()
    assert labels and all(label == "photo" or label.startswith("gradcam") for label in labels)
    page.select_option("#method", "")
    cat = page.locator(".card", has_text="chelsea.png").locator(".top5 li span").first
    predicted = cat.text_content()
    page.select_option("#class", predicted)
    shown = report.cards()
    assert "chelsea.png" in shown and "coffee.jpg" not in shown
    page.select_option("#class", "")
    page.select_option("#sort", "p-desc")
    first = page.eval_on_selector_all(
        ".card:not(.error) .top5 li:first-child .v",
        "els => els.map(e => parseFloat(e.textContent))",
    )
    assert first == sorted(first, reverse=True) and len(first) == 5
    page.fill("#q", "a")  # chelsea, grace_hopper, astronaut
    fragment = page.evaluate("location.hash")
    assert "sort=p-desc" in fragment and "q=a" in fragment
    expected = report.cards()
    assert sorted(expected) == ["astronaut.jpg", "chelsea.png", "grace_hopper.jpg"]
    again = Page(browser, sample_report / "report.html")
    reopened = again.open(fragment)
    assert again.cards() == expected
    assert reopened.input_value("#q") == "a" and reopened.input_value("#sort") == "p-desc"
    assert report.problems == [] and again.problems == []


def test_the_full_size_view_with_its_slider_by_keyboard(browser: Any, sample_report: Path) -> None:
    report = Page(browser, sample_report / "report.html")
    page = report.open("#q=coffee")
    picture = page.locator("#cards .pic").nth(1)  # the first map (the photo is 0)
    picture.focus()
    page.keyboard.press("Enter")
    assert page.locator("#viewer").evaluate("d => d.open")
    page.wait_for_function(
        "['under', 'over'].every(id => document.getElementById(id).complete && "
        "document.getElementById(id).naturalWidth > 0)"
    )
    sizes = page.evaluate("['under','over'].map(id => document.getElementById(id).naturalWidth)")
    assert sizes[0] == sizes[1] == Image.open(SAMPLES / "coffee.jpg").width  # full size
    title = page.locator("#viewer-title").text_content()
    assert "coffee.jpg" in title
    page.locator("#slider").fill("20")
    assert page.locator("#over").evaluate("e => e.style.clipPath") == "inset(0px 80% 0px 0px)"
    page.locator("#viewer-title").click()
    page.keyboard.press("ArrowRight")
    assert page.locator("#viewer-title").text_content() != title
    page.keyboard.press("Escape")
    assert not page.locator("#viewer").evaluate("d => d.open")
    assert report.problems == []


def test_readable_at_phone_width(browser: Any, sample_report: Path) -> None:
    report = Page(browser, sample_report / "report.html", width=375, height=800)
    page = report.open()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert report.problems == []


class Tiny(nn.Module):
    """A small random CNN with ReLUs, for a fast real run over many photos."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(8, 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def many_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (a tiny model, through the folder runner) over 2,000 generated small photos."""
    from saliency.files.inputs import collect_inputs
    from saliency.models.loading import LoadedModel
    from saliency.models.preprocess import Preprocessing
    from saliency.pipeline.drawing import Encoding
    from saliency.pipeline.job import run_job
    from saliency.pipeline.options import JobOptions
    from saliency.report.page import write_report

    root = tmp_path_factory.mktemp("many")
    photos = root / "photos"
    rng = np.random.default_rng(0)
    for i in range(2000):
        folder = photos / f"set{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i:04d}.jpg", quality=90)
    torch.manual_seed(0)
    loaded = LoadedModel(
        "tiny", "test", Tiny().eval(), [f"class {k}" for k in range(20)],
        Preprocessing(32, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), torch.device("cpu"),
    )  # fmt: skip
    out = root / "out"
    options = JobOptions(encoding=Encoding("jpg"), method_options=loaded_options())
    run_job(loaded, collect_inputs([str(photos)]).files, out, options)
    written = write_report(out, inputs_from=root)
    assert written.cards == 2000 and written.thumbnails == 4000
    return out


def loaded_options() -> Any:
    from saliency import MethodOptions

    return MethodOptions(batch_size=64)


def test_a_report_of_2000_photos_opens_fast_and_pages(browser: Any, many_report: Path) -> None:
    report = Page(browser, many_report / "report.html", height=1000)
    page = report.open()
    paint = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0]"
    )
    assert paint < 2000 and report.seconds < 2, (paint, report.seconds)
    assert page.locator("#summary").text_content().startswith("2000 of 2000 images")
    assert len(report.cards()) == 48  # one page drawn, however many images
    first = report.cards()
    page.locator(".pages").first.get_by_role("button", name="Next page").click()
    assert report.cards() != first and "page=2" in page.evaluate("location.hash")
    page.locator(".pages").first.get_by_role("button", name="Page 42").click()
    assert len(report.cards()) == 2000 - 41 * 48
    page.fill("#q", "set3/photo00")  # photo0003, 0013, ..., 0093
    assert len(report.cards()) == 10
    assert report.images_decoded() == []
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert report.problems == []


def test_thumbnails_are_remade_only_when_stale(many_report: Path) -> None:
    from saliency.report.page import write_report

    thumbs = sorted((many_report / "thumbs").rglob("*.jpg"))
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    picture = next(many_report.rglob("photo0007.guided.jpg"))
    os.utime(picture)  # newer than its thumbnail
    write_report(many_report, inputs_from=many_report.parent)
    changed = [p.name for p in thumbs if p.stat().st_mtime_ns != before[p]]
    assert changed == ["photo0007.guided.jpg"]


@pytest.mark.slow
def test_a_report_shows_the_sanity_check_and_comparisons(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "checks"
    photo = SAMPLES / "chelsea.png"
    for command in (["sanity", photo, "--method", "guided", "--method", "gradcam"],
                    ["compare", photo, "--method", "guided", "--method", "gradcam"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "saliency_cli", *map(str, command), "--out", str(out),
             "--report", "--quiet"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    report = Page(browser, out / "report.html")
    page = report.open()
    rows = page.locator("table.verdicts tbody tr")
    assert rows.count() == 2
    assert rows.locator("th").all_text_contents() == ["guided", "gradcam"]
    assert set(rows.locator("td:last-child").all_text_contents()) <= {"yes", "no"}
    page.wait_for_function("[...document.images].every(i => i.complete)")
    images = page.eval_on_selector_all(
        "#checks img, #comparisons img", "els => els.map(e => [e.alt, e.naturalWidth])"
    )
    assert len(images) == 3 and all(width > 0 for _, width in images)  # curves, strip, compare
    assert page.locator("#gallery").is_hidden()  # no manifest: no image cards
    assert report.problems == []


def test_a_report_of_a_folder_that_is_not_there(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "saliency_cli", "report", str(tmp_path / "nowhere")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a folder" in done.stderr


def test_a_report_of_a_similarity_run(browser: Any, tmp_path: Path) -> None:
    """``--similar-to`` (issue 34): a card per photo with its pictures, labelled by what they
    explain (no class: the reference), no top-5 bars, nothing broken in the page."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("astronaut.jpg", "chelsea.png"):
        shutil.copy(SAMPLES / name, photos / name)
    command = [sys.executable, "-m", "saliency_cli", "explain", str(photos), "--out", str(out),
               "--method", "gradcam", "--method", "guided", "--similar-to",
               str(SAMPLES / "grace_hopper.jpg"), "--report"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    report = Page(browser, out / "report.html")
    page = report.open()
    assert sorted(report.cards()) == ["astronaut.jpg", "chelsea.png"]
    assert report.images_decoded() == []
    alts = page.eval_on_selector_all("#cards img", "els => els.map(e => e.alt)")
    maps = [alt for alt in alts if " map " in alt]
    assert len(maps) == 4 and all(alt.endswith("(similar to grace_hopper.jpg)") for alt in maps)
    assert "similarity" in page.locator("#cards").text_content()  # the row's own key
    assert page.locator(".top5").count() == 0
    assert report.problems == []
