"""Browser tests: Debian's Chromium driven by Playwright against daphne on this test run's data.

Every page the browser opens is watched: a console error, an uncaught exception or a Content
Security Policy violation fails the test. Screenshots go to ``E2E_SCREENSHOT_DIR`` (``make
test`` sets and prints it; ``var/screenshots`` otherwise).
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.net import ROOT, web_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (root here), and no calls to the closed internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: Any = {"width": 1280, "height": 900}
PHONE: Any = {"width": 390, "height": 844}
# The machine is shared and loaded: waits are generous, never assertions on time.
WAIT_MS = 60_000
RUN_WAIT_MS = 300_000

# Records CSP violations in the page, before any of its own scripts run.
_CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
"""


def screenshot_dir() -> Path:
    """Where browser tests save screenshots (created on first use)."""
    path = Path(os.environ.get("E2E_SCREENSHOT_DIR") or ROOT / "var" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def web_url(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """daphne serving config.asgi on a free port, on this test run's database."""
    if not (ROOT / "node_modules" / "htmx.org").is_dir():
        pytest.fail("The dashboard's browser packages are missing: run `npm ci` (make test does).")
    log = (tmp_path / "daphne.log").open("wb")
    try:
        with web_server(stderr=log) as (url, _):
            yield url
    finally:
        log.close()


class PageWatch:
    """Console errors, page errors and CSP violations seen by the pages of one test."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        """Let console errors containing ``text`` pass (a form answered 400 on purpose)."""
        self.allowed.append(text)

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"console.{message.type}: {message.text}")
                if message.type == "error" or "Content Security Policy" in message.text
                else None
            ),
        )
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def check(self, page: Any) -> None:
        """Fail on anything seen so far (CSP violations are read from the page itself)."""
        try:
            violations = page.evaluate("window.__cspViolations || []")
        except Exception:  # a page that is navigating has no answer; the console still has it
            violations = []
        problems = [p for p in self.problems if not any(a in p for a in self.allowed)]
        problems += [f"CSP violation: {v}" for v in violations]
        assert problems == [], "\n".join(problems)


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def browser_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A fresh Chromium profile (its own user-data dir) at desktop size."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes
    # meanwhile are plain blocking calls (Django documents this switch for Playwright).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "Chromium is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
            accept_downloads=True,
        )
        context.add_init_script(_CSP_WATCH)
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, watch: PageWatch) -> Iterator[Any]:
    """The context's page, watched; the test fails on any console error or CSP violation."""
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    watch.attach(page)
    yield page
    watch.check(page)


_AXE_RUN = """async () => {
  const result = await axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] });
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes
    .slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}"""


def assert_accessible(page: Any) -> None:
    """axe-core's WCAG 2.1 A and AA rules (contrast, names, labels) pass on the current page.

    axe is evaluated through the browser's devtools channel, which the page's Content
    Security Policy does not govern, so the page itself keeps its strict policy.
    """
    source = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
    page.evaluate(f"{source}\n;true")
    violations = page.evaluate(_AXE_RUN)
    assert violations == [], f"{page.url}:\n" + "\n".join(violations)
