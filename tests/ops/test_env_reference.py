"""The environment table describes each setting by the comment directly above it only."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def generator(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "env_reference", ROOT / "scripts/env_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings_dir = tmp_path / "config" / "settings"
    settings_dir.mkdir(parents=True)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "SETTINGS", settings_dir)
    monkeypatch.setattr(module, "README", tmp_path / "README.md")
    monkeypatch.setattr(module, "EXAMPLE", tmp_path / ".env.example")
    (tmp_path / "README.md").write_text(f"{module.START}\n{module.END}\n")
    return module, settings_dir


SOURCE = """
# --- Database ----------------------------------------------------------------
# Connections the pool keeps open.
POOL_MIN = env.int("POOL_MIN", default=2)
POOL_MAX = env.int("POOL_MAX", default=20)

# ==== Pipeline core =============================================================
ROUNDS = env.int("ROUNDS", default=3)
LIMITS = {
    # Logins per IP, in the
    # limits notation.
    "login": env.str("RATE_LOGIN", default="20/minute"),
}
"""


def test_a_setting_takes_only_the_comment_lines_directly_above_it(generator):
    module, settings_dir = generator
    (settings_dir / "base.py").write_text(SOURCE)
    found = {name: text for name, (_, text, _) in module._variables().items()}
    assert found == {
        "POOL_MIN": "Connections the pool keeps open.",
        "POOL_MAX": "",
        "ROUNDS": "",
        "RATE_LOGIN": "Logins per IP, in the limits notation.",
    }


def test_check_fails_naming_every_setting_without_a_description(generator, capsys, monkeypatch):
    module, settings_dir = generator
    (settings_dir / "base.py").write_text(SOURCE)
    monkeypatch.setattr("sys.argv", ["env_reference.py", "--write"])
    assert module.main() == 1
    assert "POOL_MAX, ROUNDS" in capsys.readouterr().out
    assert not (settings_dir.parent.parent / ".env.example").exists()


def test_write_lists_every_described_setting(generator, monkeypatch):
    module, settings_dir = generator
    (settings_dir / "base.py").write_text(
        '# Connections the pool keeps open.\nPOOL_MIN = env.int("POOL_MIN", default=2)\n'
    )
    monkeypatch.setattr("sys.argv", ["env_reference.py", "--write"])
    assert module.main() == 0
    readme = (settings_dir.parent.parent / "README.md").read_text()
    assert "| `POOL_MIN` | `2` | `config/settings/base.py` | Connections the pool keeps" in readme
