"""Edit blocks applied exactly: one match of the search text, or a plain reason and nothing
kept; whole-file rewrites only for new or small files; binary files never touched."""

from typing import Any

import pytest

from pipeline.edits import edits_apply

BASE = {
    "pkg/core.py": "def a():\n    return 1\n\n\ndef b():\n    return 1\n",
    "pkg/big.py": "".join(f"X{i} = {i}\n" for i in range(300)),
    "notes.txt": "short\n",
}


def apply(
    *, files: dict[str, str] | None = None, edits: list[dict[str, str]] | None = None, **kw: Any
):
    return edits_apply(
        base=BASE,
        files=files or {},
        edits=list(edits or []),
        deleted=kw.get("deleted", []),
        binary=kw.get("binary", set()),
    )


def test_a_block_whose_search_occurs_once_is_applied():
    result = apply(
        edits=[
            {
                "path": "pkg/core.py",
                "search": "def b():\n    return 1\n",
                "replace": "def b():\n    return 2\n",
            }
        ]
    )

    assert result.errors == []
    assert result.files == {"pkg/core.py": "def a():\n    return 1\n\n\ndef b():\n    return 2\n"}


def test_blocks_apply_in_order_each_to_the_file_as_the_one_before_left_it():
    result = apply(
        edits=[
            {
                "path": "pkg/core.py",
                "search": "def b():\n    return 1\n",
                "replace": "def b():\n    return 2\n",
            },
            {"path": "pkg/core.py", "search": "    return 2\n", "replace": "    return 3\n"},
        ]
    )

    assert result.files["pkg/core.py"].endswith("def b():\n    return 3\n")


def test_a_search_text_found_twice_fails_with_how_many_times():
    result = apply(edits=[{"path": "pkg/core.py", "search": "    return 1\n", "replace": "x"}])

    assert result.files == {}
    assert result.errors == [
        "Edit 1 (pkg/core.py): the search text occurs 2 times in pkg/core.py; give more of the "
        "surrounding lines so that it occurs exactly once: 'return 1'."
    ]


def test_a_search_text_that_differs_in_whitespace_is_not_found():
    result = apply(
        edits=[{"path": "pkg/core.py", "search": "def a():\n  return 1\n", "replace": ""}]
    )

    assert result.files == {}
    assert result.errors == [
        "Edit 1 (pkg/core.py): the search text was not found in pkg/core.py (it must match the "
        "file's current content exactly, whitespace included): 'def a():\\n  return 1'."
    ]


def test_one_block_that_does_not_apply_keeps_nothing_of_the_answer():
    result = apply(
        files={"pkg/new.py": "Y = 1\n"},
        edits=[
            {"path": "pkg/core.py", "search": "def a():", "replace": "def a0():"},
            {"path": "pkg/absent.py", "search": "x", "replace": "y"},
        ],
    )

    assert result.files == {}
    assert result.errors == [
        "Edit 2 (pkg/absent.py): pkg/absent.py does not exist; write a new file whole in 'files'."
    ]


@pytest.mark.parametrize(
    ("edit", "kw", "reason"),
    [
        ({"path": "pkg/core.py", "search": "", "replace": "x"}, {}, "the search text is empty."),
        (
            {"path": "pkg/core.py", "search": "def a", "replace": "x"},
            {"deleted": ["pkg/core.py"]},
            "the file is also deleted; do one or the other.",
        ),
        (
            {"path": "notes.txt", "search": "short", "replace": "x"},
            {"binary": {"notes.txt"}},
            "notes.txt is a binary file and cannot be edited.",
        ),
    ],
)
def test_blocks_that_cannot_apply_say_why(edit, kw, reason):
    result = apply(edits=[edit], **kw)

    assert result.errors == [f"Edit 1 ({edit['path']}): {reason}"]


def test_new_files_and_small_existing_ones_may_be_written_whole(settings):
    settings.PIPELINE_REWRITE_MAX_LINES = 200

    result = apply(files={"pkg/new.py": "Y = 1\n", "pkg/core.py": "def a():\n    return 0\n"})

    assert result.errors == []
    assert set(result.files) == {"pkg/new.py", "pkg/core.py"}


def test_a_long_existing_file_written_whole_is_refused(settings):
    settings.PIPELINE_REWRITE_MAX_LINES = 200

    result = apply(files={"pkg/big.py": "X = 0\n"})

    assert result.files == {}
    assert result.errors == [
        "pkg/big.py has 300 lines: change it with edit blocks ('edits'), not a whole-file "
        "rewrite (only new files and files of at most 200 lines may be written whole)."
    ]


def test_a_file_both_written_and_edited_is_refused():
    result = apply(
        files={"notes.txt": "long\n"},
        edits=[{"path": "notes.txt", "search": "short", "replace": "long"}],
    )

    assert result.errors == [
        "Edit 1 (notes.txt): the file is also written whole; do one or the other."
    ]
