"""Fixtures shared by the tests: a fixed seed, and the system Chromium for the browser tests.

Chromium is Debian's package (``.ci/run`` installs it); Playwright's own downloads are not
reachable here. Without it the browser tests skip, unless ``SALIENCY_REQUIRE_CHROMIUM`` is set
(CI)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


CHROMIUM = os.environ.get("SALIENCY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium through Playwright, one per test module."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("SALIENCY_REQUIRE_CHROMIUM"):
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip("no system Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()
