"""A small repository to import in pipeline tests: a Python package with its own tests."""

import io
import tarfile
from pathlib import Path

from tests.git_server import make_repository

# Binary content: a NUL in the first bytes, and not UTF-8.
LOGO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"

CALC_FILES: dict[str, str | bytes] = {
    "README.md": "# calc\n\nSmall arithmetic helpers.\n",
    "pyproject.toml": (
        '[project]\nname = "calc"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "calc/__init__.py": '"""calc: small arithmetic helpers."""\n',
    "calc/ops.py": (
        '"""Arithmetic operations."""\n'
        "\n\n"
        "def add(a: int, b: int) -> int:\n"
        '    """The sum of a and b."""\n'
        "    return a + b\n"
        "\n\n"
        "def mul(a: int, b: int) -> int:\n"
        '    """The product of a and b."""\n'
        "    return a * b\n"
    ),
    "tests/test_ops.py": (
        "from calc.ops import add, mul\n"
        "\n\n"
        "def test_add_adds():\n"
        "    assert add(2, 3) == 5\n"
        "\n\n"
        "def test_mul_multiplies():\n"
        "    assert mul(2, 3) == 6\n"
    ),
    "assets/logo.png": LOGO,
}
BASELINE_TESTS = {
    "tests/test_ops.py::test_add_adds": "passed",
    "tests/test_ops.py::test_mul_multiplies": "passed",
}


def calc_repository(path: Path, files: dict[str, str | bytes] | None = None) -> str:
    """A git work tree of the calc package at ``path``; its commit."""
    return make_repository(path, files or CALC_FILES)


def tar_gz(files: dict[str, str | bytes], *, root: str = "calc-main") -> bytes:
    """The files as a .tar.gz (under one top directory, as a forge's download makes it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{root}/{name}" if root else name)
            info.size = len(data)
            info.mode = 0o644
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
