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
