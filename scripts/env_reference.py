#!/usr/bin/env python3
"""Keep the README's environment table and `.env.example` true to the settings.

Every ``env.<cast>("NAME", default=...)`` call under ``config/settings/`` is one variable;
the comment lines just above it (if any) are its description. ``--write`` rewrites the
README block between the env markers and ``.env.example``; ``--check`` exits 1 when either
is out of date (a test runs it).
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "config" / "settings"
README = ROOT / "README.md"
EXAMPLE = ROOT / ".env.example"
START, END = "<!-- env:start -->", "<!-- env:end -->"
SKIP = {"test.py"}


def _section_above(lines: list[str], index: int) -> str:
    for line in reversed(lines[:index]):
        text = line.strip().lstrip("#").strip()
        if line.strip().startswith("#") and text.startswith("---"):
            return text.strip("- ").rstrip(":")
    return ""


def _variables() -> dict[str, tuple[str, str, str]]:
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(SETTINGS.rglob("*.py")):
        if path.name in SKIP:
            continue
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "env"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            name = node.args[0].value
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            shown = "(required)" if default is None else ast.get_source_segment(source, default)
            comments: list[str] = []
            row = node.lineno - 2
            # A run of settings under one comment shares it.
            while row >= 0 and "= env." in lines[row] and not lines[row].lstrip().startswith("#"):
                row -= 1
            while row >= 0 and lines[row].strip().startswith("#"):
                text = lines[row].strip().lstrip("#").strip()
                if not text.startswith("---"):  # section headers describe a group, not this
                    comments.insert(0, text)
                row -= 1
            if not comments:  # fall back on the heading of the section it stands in
                section = _section_above(lines, node.lineno - 1)
                comments = [section] if section else []
            where = str(path.relative_to(ROOT))
            if name not in found or path.name == "base.py":
                found[name] = (shown or "", " ".join(comments), where)
    return dict(sorted(found.items()))


def _table(variables: dict[str, tuple[str, str, str]]) -> str:
    rows = ["| variable | default | where | what |", "|---|---|---|---|"]
    for name, (default, text, where) in variables.items():
        cell = default.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | `{cell}` | `{where}` | {text.replace('|', '/')} |")
    return "\n".join(rows)


def _example(variables: dict[str, tuple[str, str, str]]) -> str:
    out = [
        "# Every setting the platform reads, with its default (commented out).",
        "# Copy to .env and uncomment what you change. Generated: scripts/env_reference.py --write",
        "",
    ]
    for name, (default, text, _) in variables.items():
        if text:
            out.append(f"# {text}")
        value = default.strip("\"'") if default.startswith(("'", '"')) else default
        out.append(f"# {name}={value}")
    return "\n".join(out) + "\n"


def main() -> int:
    variables = _variables()
    readme = README.read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    new_readme = f"{head}{START}\n{_table(variables)}\n{END}{tail}"
    new_example = _example(variables)
    if "--write" in sys.argv:
        README.write_text(new_readme)
        EXAMPLE.write_text(new_example)
        return 0
    stale = [
        str(p.name)
        for p, new in ((README, new_readme), (EXAMPLE, new_example))
        if not p.exists() or p.read_text() != new
    ]
    if stale:
        print("out of date: " + ", ".join(stale) + " (run scripts/env_reference.py --write)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
