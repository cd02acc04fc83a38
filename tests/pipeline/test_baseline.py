"""How an imported tree's own tests run (pytest for a Python project), or why they do not."""

import pytest

from pipeline.baseline import baseline_run, detect_test_command


@pytest.mark.parametrize(
    ("files", "sign"),
    [
        ({"pytest.ini": "[pytest]\n", "t/test_a.py": ""}, "pytest.ini"),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\n", "tests/test_a.py": ""},
            "pyproject.toml",
        ),
        ({"setup.cfg": "[tool:pytest]\n", "a_test.py": ""}, "setup.cfg"),
        ({"tox.ini": "[pytest]\n", "test_a.py": ""}, "tox.ini"),
        ({"conftest.py": "", "pkg/test_a.py": ""}, "conftest.py"),
    ],
)
def test_a_python_project_with_test_modules_runs_pytest(files, sign):
    command, why = detect_test_command(files, sorted(files))

    assert command == "python -m pytest"
    assert sign in why


def test_a_project_without_python_is_not_run_with_the_reason():
    files = {"index.js": "console.log(1)\n", "test/index.test.js": ""}

    assert detect_test_command(files, sorted(files)) == (
        None,
        "Not a Python project (no .py files): only Python projects' tests (pytest) are run at "
        "import for now.",
    )


def test_a_python_project_without_test_modules_is_not_run_with_the_reason():
    files = {"pkg/core.py": "X = 1\n", "pytest.ini": "[pytest]\n"}

    assert detect_test_command(files, sorted(files)) == (
        None,
        "A Python project without test modules (no test_*.py or *_test.py files) although "
        "pytest.ini configure pytest.",
    )


def test_the_baseline_is_not_run_without_the_sandbox(settings):
    settings.SANDBOX_TESTS_ENABLED = False

    baseline = baseline_run({"test_a.py": "def test_a():\n    assert True\n"})

    assert (baseline["status"], baseline["command"], baseline["tests"]) == (
        "not_run",
        "python -m pytest",
        [],
    )


@pytest.mark.slow
def test_each_test_is_kept_with_its_outcome_and_a_broken_module_as_one_error():
    baseline = baseline_run(
        {
            "test_a.py": "def test_ok():\n    assert True\n\n\ndef test_bad():\n    assert False\n",
            "test_b.py": "import missing_module\n\n\ndef test_never():\n    pass\n",
            "data.bin": b"\x00\x01",
        }
    )

    assert baseline["status"] == "failed"
    assert sorted((t["id"], t["outcome"]) for t in baseline["tests"]) == [
        ("test_a.py::test_bad", "failed"),
        ("test_a.py::test_ok", "passed"),
        ("test_b.py", "error"),
    ]
    assert baseline["counts"] == {"passed": 1, "failed": 1, "errors": 1, "skipped": 0}
