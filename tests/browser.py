"""A real browser for the web tests: Debian's chromium driven by Playwright (its Python API), one per test session.

The browser is found at $SIMSA_TEST_CHROMIUM, else /usr/bin/chromium (`scripts/test-browser ensure` installs it;
`make test` does this and sets both variables). Without one the browser tests are skipped, unless
SIMSA_REQUIRE_BROWSER=1, when they fail. Playwright's own browser download is never used.

The browser lives for one test module: Playwright's sync API keeps an asyncio event loop running in the main
thread while it is open, and `asyncio.run()` there fails, so holding it for the whole session would break any later
test that runs a loop of its own (a test module that needs both runs its loop in a thread, as
bench/web_load.run_async does). Starting it costs about a second.

`shot(page, name)` keeps a full-page screenshot of every page a test visits: `<tmp>/screenshots/NN-name.png` under
the test's tmp folder, and a copy in `$SIMSA_SCREENSHOTS_DIR/<test>/` when that variable is set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

CHROMIUM_ENV = "SIMSA_TEST_CHROMIUM"
REQUIRE_BROWSER_ENV = "SIMSA_REQUIRE_BROWSER"
SCREENSHOTS_ENV = "SIMSA_SCREENSHOTS_DIR"
DEFAULT_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# No sandbox (the tests run as root) and no network of the browser's own (there is none to reach here).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15_000  # one click or page load; a slow CI machine still finishes well within it


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def chromium_path() -> str | None:
    """The chromium executable to drive, or None when this machine has none."""
    chosen = os.environ.get(CHROMIUM_ENV, "").strip()
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return next((p for p in DEFAULT_CHROMIUM if os.access(p, os.X_OK)), None)


def _missing(reason: str) -> None:
    if _truthy(os.environ.get(REQUIRE_BROWSER_ENV)):
        pytest.fail(f"{reason} ({REQUIRE_BROWSER_ENV} is set, so this is not skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver for a test module (its sync API; the tests' servers run in other threads)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the browser tests need the `playwright` package (pip install -e '.[test]')")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless chromium for a test module; tests open their own contexts (cookies) and pages in it."""
    path = chromium_path()
    if path is None:
        where = os.environ.get(CHROMIUM_ENV) or " or ".join(DEFAULT_CHROMIUM)
        _missing(f"no chromium at {where}: run `scripts/test-browser ensure` (or `make test`)")
    launched = playwright_driver.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS,
                                                 timeout=60_000)
    try:
        yield launched
    finally:
        launched.close()


def new_context(browser: Browser, base_url: str, lang: str | None = "en") -> BrowserContext:
    """A fresh browser profile (its own cookies: one person) on `base_url`, reading `lang` first."""
    headers = {"Accept-Language": lang} if lang else {}
    context = browser.new_context(base_url=base_url, locale=lang or "en-US", extra_http_headers=headers,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


class Shots:
    """Numbered full-page screenshots of one test: `shots(page, "name")` → `<folder>/NN-name.png`."""

    def __init__(self, folder: Path, copy_to: Path | None = None) -> None:
        self.folder = folder
        self.copy_to = copy_to
        self.taken: list[Path] = []

    def __call__(self, page: Page, name: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.taken) + 1:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, self.copy_to / path.name)
        return path


def shots_for(folder: Path, test_name: str) -> Shots:
    """Screenshots kept under `folder/screenshots`, copied to $SIMSA_SCREENSHOTS_DIR/<test_name> when set."""
    extra = os.environ.get(SCREENSHOTS_ENV, "").strip()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-")
    return Shots(folder / "screenshots", Path(extra) / slug if extra else None)


@pytest.fixture
def shot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Page, str], Path]:
    """`shot(page, name)`: a full-page screenshot of what `page` shows now, numbered in the order taken."""
    return shots_for(tmp_path, request.node.name)
