"""The benches' databases: a fresh, migrated one for a bench's stack (dropped and created
again each time), and the kept one of a one-process bench."""

from __future__ import annotations

import os
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


def in_process_database(
    *, database: str, redis_url: str, root: Path | str, env: dict[str, str] | None = None
) -> None:
    """Make this process run the code under ``root`` on ``database`` (created when missing,
    kept otherwise) and ``redis_url``, before Django is set up: the environment of the
    one-process benchmarks (``bench/run_cpu.py``, ``bench/request_cpu.py``), ``env`` added."""
    import psycopg

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "LOG_LEVEL": "WARNING",
            "SANDBOX_TESTS_ENABLED": "false",
            **(env or {}),
        }
    )
    for name in ("PROMETHEUS_MULTIPROC_DIR", "TEST_DB_NAME"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(root))
    os.chdir(root)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        exists = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if exists.fetchone() is None:
            db.execute(f'CREATE DATABASE "{database}"')


SERVERS = ("postgres", "redis-server")


def servers_cpu() -> dict[str, float]:
    """CPU seconds used so far by the machine's PostgreSQL and Redis servers, each summed over
    its processes: their work for a bench, on a machine where nothing else uses them. A
    process's own time and that of its children it has reaped, so a PostgreSQL backend that
    ended meanwhile is still counted (the postmaster reaps it)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(SERVERS, 0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue
        server = next((s for s in SERVERS if name.startswith(s)), None)
        if server is not None:
            fields = rest.split()  # fields[11:15]: utime, stime, cutime, cstime
            totals[server] += sum(int(v) for v in fields[11:15])
    return {server: ticks_ / ticks for server, ticks_ in totals.items()}


def sessions_started(db_name: str) -> int:
    """Connections made to ``db_name`` so far (PostgreSQL's statistics, 14 and later; they
    are flushed about once a second, so read them a second after the work)."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        row = db.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [db_name]
        ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0
