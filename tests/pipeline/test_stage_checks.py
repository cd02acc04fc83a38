"""A check report names the tree it ran on, and a suite takes a green report of exactly its
tree instead of running the same round again (``pipeline.services.stages.checks``)."""

from collections.abc import Mapping

from pipeline.services.stages.checks import report_for_tree, tree_digest

TREE = {"pkg/core.py": "def f():\n    return 1\n", "tests/test_core.py": "def test_f(): ...\n"}


def green(files: Mapping[str, str | bytes]) -> dict[str, object]:
    return {"passed": True, "summary": "1 passed", "tree_sha256": tree_digest(files)}


def test_the_same_files_in_another_order_have_the_same_digest() -> None:
    assert tree_digest(dict(reversed(list(TREE.items())))) == tree_digest(TREE)


def test_a_changed_byte_a_moved_boundary_or_an_extra_file_changes_the_digest() -> None:
    digests = {
        tree_digest(TREE),
        tree_digest({**TREE, "pkg/core.py": "def f():\n    return 2\n"}),
        tree_digest({"ab": "c"}),
        tree_digest({"a": "bc"}),
        tree_digest({**TREE, "logo.png": b"\x89PNG"}),
    }

    assert len(digests) == 5


def test_a_green_report_of_the_same_tree_is_taken_with_the_name_it_was_stored_under() -> None:
    report = green(TREE)

    assert report_for_tree(dict(TREE), {"core": None, "cli": report}) == ("cli", report)


def test_a_red_report_or_a_report_of_another_tree_is_not_taken() -> None:
    red = {**green(TREE), "passed": False}
    other = green({**TREE, "tests/test_cli.py": "def test_cli(): ...\n"})
    unnamed = {"passed": True, "summary": "1 passed"}

    assert report_for_tree(TREE, {"core": red, "cli": other, "storage": unnamed}) is None
