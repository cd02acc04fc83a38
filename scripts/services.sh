#!/usr/bin/env bash
# Check PostgreSQL and Redis at DATABASE_URL / REDIS_URL (defaults: the local ones).
# If one is unreachable and a Docker engine answers, start the compose services db and
# redis; otherwise say how to start them and fail. With --create-db, also create the
# database named in DATABASE_URL when it does not exist yet.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a
PY="${PY:-.venv/bin/python}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/aiflow}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export DATABASE_URL REDIS_URL

check() {
  "$PY" - "$@" <<'PYEOF'
import os, sys, urllib.parse
import psycopg, redis
which = sys.argv[1]
try:
    if which == "postgres":
        url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
        psycopg.connect(host=url.hostname or "127.0.0.1", port=url.port or 5432,
                        user=urllib.parse.unquote(url.username or "postgres"),
                        password=urllib.parse.unquote(url.password or "") or None,
                        dbname="postgres", connect_timeout=3).close()
    else:
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
except Exception as exc:  # noqa: BLE001
    print(f"{which}: {type(exc).__name__}: {exc}".strip(), file=sys.stderr)
    sys.exit(1)
PYEOF
}

missing=()
check postgres || missing+=(postgres)
check redis || missing+=(redis)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "Starting db and redis with docker compose ..."
    docker compose up -d db redis
    for _ in $(seq 1 30); do check postgres 2>/dev/null && check redis 2>/dev/null && missing=() && break; sleep 1; done
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  cat >&2 <<MSG

Cannot reach: ${missing[*]}  (DATABASE_URL=${DATABASE_URL%%@*}@..., REDIS_URL=${REDIS_URL})
Start them, then run this again. For example:
  PostgreSQL (Debian):  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
  Redis:                redis-server --daemonize yes --bind 127.0.0.1 --port 6379
  With Docker:          docker compose up -d db redis
Or point DATABASE_URL / REDIS_URL at servers you already run.
MSG
  exit 1
fi

if [ "${1:-}" = "--create-db" ]; then
  "$PY" - <<'PYEOF'
import os, urllib.parse
import psycopg
from psycopg import sql
url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
name = url.path.lstrip("/") or "aiflow"
with psycopg.connect(host=url.hostname or "127.0.0.1", port=url.port or 5432,
                     user=urllib.parse.unquote(url.username or "postgres"),
                     password=urllib.parse.unquote(url.password or "") or None,
                     dbname="postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
PYEOF
fi
echo "services: postgres and redis reachable"
