"""The README's environment table and .env.example list exactly the settings read."""

import subprocess
import sys
from pathlib import Path

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


def test_every_test_the_readme_names_exists():
    import re

    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"`([a-z_]+/[a-z_/]*test_[a-z_0-9]+\.py)(?:::([a-z_0-9]+))?`", readme)
    assert len(named) > 20
    missing = [
        f"{path}::{name}" if name else path
        for path, name in named
        if not (ROOT / "tests" / path).is_file()
        or (name and f"def {name}(" not in (ROOT / "tests" / path).read_text())
    ]
    assert missing == []
