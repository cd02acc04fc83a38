#!/usr/bin/env python3
"""Keep the README's environment table and `.env.example` true to the settings.

Every ``env.<cast>("NAME", default=...)`` call under ``config/settings/`` is one variable;
the comment line(s) directly above it are its description, never a section banner
(``# ---``, ``# ===``). A default that names a constant of the same module shows the
constant's value
(a literal only). ``--write`` rewrites the README block between the env markers and
``.env.example``; ``--check`` exits 1 when either is out of date or a variable has no
description of its own (a test runs it).
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


def _is_banner(text: str) -> bool:
    """A section banner (``# --- Database ---``, ``# ==== END ... ====``) names no setting."""
    return text.startswith(("---", "===", "***"))


def _description(lines: list[str], index: int) -> str:
    """The comment line(s) directly above line ``index`` (0-based), banners excluded.

    Only an unbroken run of comment lines touching the setting counts: a blank line, code,
    or a section banner ends it, so a setting never borrows another's words or a heading.
    """
    comments: list[str] = []
    row = index - 1
    while row >= 0 and lines[row].strip().startswith("#"):
        text = lines[row].strip().lstrip("#").strip()
        if _is_banner(text):
            break
        comments.insert(0, text)
        row -= 1
    return " ".join(comment for comment in comments if comment)


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _variables() -> dict[str, tuple[str, str, str]]:
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(SETTINGS.rglob("*.py")):
        if path.name in SKIP:
            continue
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        constants = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and _literal(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
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
            if isinstance(default, ast.Name) and default.id in constants:
                default = constants[default.id]
            shown = "(required)" if default is None else ast.get_source_segment(source, default)
            where = str(path.relative_to(ROOT))
            if name not in found or path.name == "base.py":
                found[name] = (shown or "", _description(lines, node.lineno - 1), where)
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
    undescribed = sorted(name for name, (_, text, _) in variables.items() if not text)
    if undescribed:
        print(
            "no description (a comment line directly above the env call): " + ", ".join(undescribed)
        )
        return 1
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
