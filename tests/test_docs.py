"""The documentation site cannot rot: its Python examples run, its command lines parse with the
command's own parser, its figures come from ``docs/make_figures.py``, every method, command and
public name has its place, and the built site works in a browser (Chromium through Playwright:
no console error, search finds a method, the reference shows ``explain``'s parameters)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
CONTROL = {"&&", "&", ";", "|", "||"}
ELSEWHERE = "# job.py"  # run under torchrun by tests/test_many_processes.py


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def python_blocks(page: Path) -> list[str]:
    return [b for b in PYTHON_BLOCK.findall(page.read_text()) if not b.startswith(ELSEWHERE)]


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
def test_the_python_examples_of_each_page_run_in_order(page: Path, tmp_path: Path) -> None:
    """Each page's examples are one script, in a fresh interpreter: a page stands alone."""
    (tmp_path / "sample_images").symlink_to(ROOT / "sample_images")
    script = tmp_path / "examples.py"
    script.write_text("\n".join(python_blocks(page)) + "\nprint('examples ran')\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "examples ran" in done.stdout


def docstring_examples() -> list[tuple[str, str]]:
    """The examples in the public docstrings, which the reference page shows."""
    import inspect

    import saliency

    found = []
    for name in saliency.__all__:
        public = getattr(saliency, name)
        for member in [public, *vars(public).values()] if inspect.isclass(public) else [public]:
            for block in PYTHON_BLOCK.findall(inspect.getdoc(member) or ""):
                found.append((name, textwrap.dedent(block)))
    return found


@pytest.mark.slow
def test_the_docstring_examples_run(tmp_path: Path) -> None:
    examples = docstring_examples()
    assert {"explain", "RuleHooks"} <= {name for name, _ in examples}
    script = tmp_path / "docstrings.py"
    script.write_text("\n".join(block for _, block in examples) + "\nprint('examples ran')\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0 and "examples ran" in done.stdout, done.stderr[-3000:]


def saliency_lines(block: str) -> list[list[str]]:
    """The ``saliency`` invocations of a shell block, as argument lists after the program name."""
    return [argv for line in block.replace("\\\n", " ").splitlines() for argv in invocations(line)]


def invocations(text: str) -> list[list[str]]:
    """Each command of a line (split at ``&&``, ``&``, ``;``, ``|``) that runs ``saliency``:
    directly, as torchrun's ``-m saliency_cli`` or ``--no-python saliency``, or inside sbatch's
    ``--wrap "..."``."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in CONTROL:
            commands.append([])
        else:
            commands[-1].append(word)
    found = []
    for argv in commands:
        if "--wrap" in argv:
            found += invocations(argv[argv.index("--wrap") + 1])
            continue
        named = [i for i, w in enumerate(argv) if w == "saliency" or w == "saliency_cli"]
        if named:
            found.append(argv[named[0] + 1 :])
    return found


def test_the_shell_examples_find_saliency_lines() -> None:
    block = (
        'pip install -e ".[x]" && saliency explain a --out b\n'
        "torchrun --nproc-per-node 8 -m saliency_cli explain p/ \\\n    --out m/\n"
        'sbatch --array=0-15 --wrap "saliency explain /p --out /m"  # note\n'
        "saliency explain p --shard 0/2 & saliency explain p --shard 1/2\n"
    )
    assert saliency_lines(block) == [
        ["explain", "a", "--out", "b"],
        ["explain", "p/", "--out", "m/"],
        ["explain", "/p", "--out", "/m"],
        ["explain", "p", "--shard", "0/2"],
        ["explain", "p", "--shard", "1/2"],
    ]


def shell_examples() -> list[tuple[str, list[str]]]:
    pages = [*PAGES, ROOT / "README.md"]
    return [
        (f"{page.name}: saliency {' '.join(argv)}", argv)
        for page in pages
        for block in SHELL_BLOCK.findall(page.read_text())
        for argv in saliency_lines(block)
    ]


def test_every_shell_example_parses_with_the_commands_own_parser() -> None:
    """Every option named exists and every value is one the command accepts (choices, numbers,
    ranges), as the command itself would check it before any work."""
    from saliency_cli.reference import group

    examples = shell_examples()
    assert len(examples) >= 30
    for shown, argv in examples:
        if argv in (["--version"], ["--help"]):
            continue
        command = group.commands.get(argv[0])
        assert command is not None, shown
        try:
            command.make_context(argv[0], argv[1:])
        except Exception as error:  # click's usage errors (typer vendors its own click)
            pytest.fail(f"{shown}: {getattr(error, 'format_message', error.__str__)()}")


def test_every_figure_is_made_by_the_figure_script() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        from make_figures import FIGURES, SCRIPTED
    finally:
        sys.path.remove(str(DOCS))
    made = {*FIGURES, *SCRIPTED, "report.png"}  # report.png: docs/report_screenshot.py
    for page in [*PAGES, ROOT / "README.md"]:
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            target = (page.parent / link).resolve()
            assert target.is_file(), f"{page.name}: {link}"
            assert target.parent == DOCS and target.name in made, f"{page.name}: {link}"
    assert all((DOCS / name).is_file() for name in made)


def test_every_method_command_and_public_name_has_its_place() -> None:
    import saliency
    from saliency.engine.registry import all_methods
    from saliency_cli.reference import group

    rows = set(re.findall(r"^\| `(\w+)` \|", (DOCS / "methods" / "index.md").read_text(), re.M))
    built_in = {m.name for m in all_methods() if type(m).__module__.startswith("saliency.")}
    assert built_in - {"gradient", "deconvnet", "guided"} <= rows, built_in - rows
    assert {"gradient", "deconvnet", "guided"} <= set(re.findall(r"`(\w+)`", (DOCS / "rules.md")
                                                                .read_text()))  # fmt: skip
    config = (ROOT / "mkdocs.yml").read_text()
    for name in group.commands:
        page = DOCS / "commands" / f"{name}.md"
        assert f"commands/{name}.md" in config and f"<!-- options: {name} -->" in page.read_text()
    reference = (DOCS / "api" / "reference.md").read_text()
    assert set(re.findall(r"^::: saliency\.(\w+)$", reference, re.M)) == set(saliency.__all__)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built as CI builds it (warnings are errors)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site on localhost (search needs http, as on any host)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error"
            else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "requestfailed",  # a request cut short by going to the next page is no fault
        lambda r: problems.append(f"failed: {r.url}") if "ABORTED" not in (r.failure or "")
        else None,
    )  # fmt: skip
    page.goto(url)
    page.wait_for_load_state("load")
    return page, problems


@pytest.mark.slow
def test_every_page_of_the_site_opens_without_a_console_error(browser: Any, served: str) -> None:
    page, problems = open_page(browser, served)
    for source in PAGES:
        path = source.relative_to(DOCS).with_suffix("").as_posix() + "/"
        path = path.removesuffix("index/")
        page.goto(served + path)
        page.wait_for_load_state("load")
        assert page.locator("article h1").count() == 1, path
        broken = page.eval_on_selector_all(
            "article img", "els => els.filter(e => !(e.naturalWidth > 0)).map(e => e.src)"
        )
        assert problems == [] and broken == [], (path, problems, broken)


@pytest.mark.slow
def test_search_finds_a_method_by_name(browser: Any, served: str) -> None:
    page, problems = open_page(browser, served)
    query = page.locator("input[data-md-component='search-query']")
    results = page.locator(".md-search-result__item > a")
    for _ in range(20):  # typed as a user types; what comes before the index is built is lost
        query.fill("")
        query.press_sequentially("gradcam_plus_plus")
        page.wait_for_timeout(500)
        if results.count():
            break
    found = results.evaluate_all("links => links.map(a => [a.href, a.textContent])")
    assert any("/methods/" in href and "gradcam_plus_plus" in text for href, text in found), found
    assert problems == []


@pytest.mark.slow
def test_the_reference_shows_explains_parameters(browser: Any, served: str) -> None:
    page, problems = open_page(browser, served + "api/reference/")
    section = page.locator("[id='saliency.explain']").locator("xpath=..")
    text = section.inner_text()
    for name in ("model", "inputs", "method", "target", "smooth", "batch_size", "settings"):
        assert re.search(rf"\b{name}\b", text), name
    assert "Returns" in text and "Raises" in text and "ValueError" in text
    assert problems == []
