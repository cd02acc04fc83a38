"""The README's environment table and .env.example list exactly the settings read, and every
test the README and the docs/ pages name exists."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_env_reference_in_readme_and_env_example_is_up_to_date():
    result = subprocess.run(
        [sys.executable, "scripts/env_reference.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# A test named in a document: `path/test_x.py` or `path/test_x.py::test_name`, under tests/
# (README rows leave out the `tests/` prefix, docs/ pages write it).
NAMED = re.compile(r"`(?:tests/)?([a-z_0-9]+/[a-z_/0-9]*test_[a-z_0-9]+\.py)(?:::([a-z_0-9]+))?`")
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def named_tests(document: str) -> list[tuple[str, str]]:
    """Every (path under tests/, test name or "") the document names."""
    return NAMED.findall((ROOT / document).read_text())


def missing_tests(named: list[tuple[str, str]]) -> list[str]:
    return [
        f"{path}::{name}" if name else path
        for path, name in named
        if not (ROOT / "tests" / path).is_file()
        or (name and f"def {name}(" not in (ROOT / "tests" / path).read_text())
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_test_a_document_names_exists(document: str) -> None:
    assert missing_tests(named_tests(document)) == []


def test_the_readme_and_the_security_page_are_read_whole() -> None:
    readme = named_tests("README.md")
    security = named_tests("docs/security.md")

    # Names with digits (the e2e/ browser tests) and every section of the security page.
    assert (
        "e2e/test_console_chromium.py",
        "test_a_person_runs_a_generation_end_to_end_in_the_browser",
    ) in readme
    assert (
        "e2e/test_multihost.py",
        "test_a_run_on_separate_hosts_completes_downloads_and_shows_in_the_terminal",
    ) in readme
    assert (
        "ops/test_health_freshness.py",
        "test_a_database_that_cannot_be_reached_is_named",
    ) in security
    assert (
        "accounts/test_register_login.py",
        "test_register_refuses_a_common_password_naming_the_rule",
    ) in security
    assert len(readme) > 100
    assert len(security) > 150


def test_a_document_naming_a_test_that_does_not_exist_is_caught() -> None:
    named = NAMED.findall(
        "`e2e/test_console_chromium.py::test_no_such_test_2` and "
        "`tests/sandbox/test_seccomp.py::test_no_such_test` and `ops/test_nothing_here.py`"
    )

    assert missing_tests(named) == [
        "e2e/test_console_chromium.py::test_no_such_test_2",
        "sandbox/test_seccomp.py::test_no_such_test",
        "ops/test_nothing_here.py",
    ]
