"""The offline model (a labelled test double) on an imported repository: it plans a change to
a module the map names, and its edit blocks apply exactly to the base content."""

from typing import Any

from pipeline.edits import edits_apply
from pipeline.repomap import MapFile, repo_map
from providers.offline.repository import REGRESSION_MARKER, code, design, tail_anchor
from tests.pipeline.repo_fixtures import CALC_FILES

TEXTS = {path: c for path, c in CALC_FILES.items() if isinstance(c, str)}
UTILS = "def shout(text: str) -> str:\n    return text.upper()\n"


def the_map(files: dict[str, str]) -> dict[str, Any]:
    return repo_map([MapFile(p, len(c), c) for p, c in files.items()], budget=100_000)


def coder_answer(files: dict[str, str], prompt: str, action: str | None = None) -> tuple:
    planned = design({"prompt": prompt, "repo_map": the_map(files)}, None)
    component = planned["components"][0]
    context = {
        "kind": "code",
        "prompt": prompt,
        "task": {"key": component["name"], "files": component["files"]},
        "design": planned,
        "base_files": {p: files[p] for p in component["files"] if p in files},
        "repository": {"origin": "import"},
    }
    return planned, code(context, action)


def applied(files: dict[str, str], answer: dict[str, Any]):
    return edits_apply(
        base=files,
        files={f["path"]: f["content"] for f in answer["files"]},
        edits=answer["edits"],
        deleted=answer["deleted"],
    )


def test_the_change_edits_the_module_the_map_shows_and_adds_a_test_for_it():
    planned, answer = coder_answer(TEXTS, "Add a bulk adder")

    assert planned["components"][0]["files"] == ["calc/ops.py", "tests/test_ops_add_all.py"]
    assert planned["interfaces"][0]["name"] == "add_all"
    result = applied(TEXTS, answer)
    assert result.errors == []
    assert result.files["calc/ops.py"].startswith(TEXTS["calc/ops.py"])
    assert "def add_all(calls: list[tuple]) -> list:" in result.files["calc/ops.py"]
    assert result.files["tests/test_ops_add_all.py"].startswith(
        "from calc.ops import add, add_all\n"
    )


def test_the_module_the_prompt_names_is_the_one_changed():
    files = {**TEXTS, "calc/utils.py": UTILS}

    planned, answer = coder_answer(files, "Change calc/utils.py so that it shouts in bulk")

    assert planned["components"][0]["files"][0] == "calc/utils.py"
    assert "def shout_all(" in applied(files, answer).files["calc/utils.py"]


def test_a_second_change_takes_the_next_function():
    _, answer = coder_answer(TEXTS, "Add a bulk adder")
    changed = {**TEXTS, **applied(TEXTS, answer).files}

    planned, _ = coder_answer(changed, "Add more")

    assert planned["interfaces"][0]["name"] == "mul_all"


def test_the_scripted_regression_breaks_an_existing_function_with_a_block_that_applies():
    _, answer = coder_answer(TEXTS, "Add a bulk adder", action="regress")

    result = applied(TEXTS, answer)

    assert result.errors == []
    assert f"    return None  # {REGRESSION_MARKER}\n" in result.files["calc/ops.py"]
    assert "return a + b" not in result.files["calc/ops.py"]


def test_the_scripted_stale_edit_does_not_apply():
    _, answer = coder_answer(TEXTS, "Add a bulk adder", action="stale")

    result = applied(TEXTS, answer)

    assert result.files == {}
    assert result.errors[0].startswith("Edit 1 (calc/ops.py): the search text was not found")


def test_the_tail_anchor_grows_until_it_occurs_once():
    content = "x = 1\nreturn\n\ny = 2\nreturn\n\n\n"

    assert tail_anchor(content) == "y = 2\nreturn\n"
