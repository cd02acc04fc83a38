"""A fresh, migrated database for a bench's stack (dropped and created again each time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit


def migrated_database(server_url: str, db_name: str, *, root: Path, env: dict[str, str]) -> None:
    """Drop and recreate ``db_name`` on the PostgreSQL server of ``server_url``, then migrate
    it with the code under ``root`` (``env`` names the database to the settings)."""
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=root,
        env=env,
        check=True,
    )
