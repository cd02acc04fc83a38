#!/usr/bin/env python
"""The API tier under load: wrk at 50 connections on GET /projects (signed in) and /health.

Starts the web tier the way ``make up`` does (``python -m config.serve``: WEB_PROCESSES
daphne processes on one port) and one Celery worker (so /health has workers to see), on
the database of DATABASE_URL (migrated first) and the Redis of BENCH_REDIS_URL; signs a
user in, gives them a few projects, then runs ``wrk --latency`` against each path and
prints p50 / p90 / p99 latency, requests per second and non-2xx answers. Figures, not
assertions: the machine's load is printed with them (and written to
bench/results/api_load.json).

    python bench/api_load.py                       # WEB_PROCESSES from the environment
    python bench/api_load.py --web-processes 1 2   # one row per process count
    python bench/api_load.py --url http://127.0.0.1:8001 --token ACCESS   # a running server
    python bench/api_load.py --profile var/profiles   # py-spy of each web process, too

Needs ``wrk`` (Debian: apt-get install wrk), PostgreSQL and Redis.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api_load.json"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PROJECTS = 20


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": os.environ.get("BENCH_SETTINGS", "config.settings.local"),
        "DJANGO_DEBUG": "false",
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        # The limit is still checked on every call; the benchmark just never reaches it.
        "RATE_LIMIT_USER": "100000000/minute",
        "SANDBOX_TESTS_ENABLED": "false",
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(  # noqa: S603 - our own commands
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10) as response:  # noqa: S310
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode()[:300]
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise SystemExit(f"{url}/health is not 200 after {timeout}s: {last}")


def _seed() -> str:
    """A signed-in user with a few projects; their access token."""
    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from accounts.models import User
    from accounts.services import session_start
    from projects.models import Project

    user, _ = User.objects.get_or_create(
        email="api-load@bench.local", defaults={"username": "api-load-bench"}
    )
    for index in range(PROJECTS - Project.objects.filter(owner=user).count()):
        Project.objects.create(owner=user, name=f"Bench {index}", description="api load")
    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="bench/api_load")
    return str(pair.access)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wrk(
    url: str, *, connections: int, seconds: int, token: str | None, web_pid: int | None = None
) -> dict[str, Any]:
    """One wrk run: latency percentiles (ms), requests per second, errors, and (given the
    web tier's pid) the web processes' CPU milliseconds per request."""
    pids = _tree(web_pid) if web_pid else []
    cpu_before = _cpu_seconds(pids)
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--latency", "--timeout", "10s"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(  # noqa: S603
        [*argv, url], capture_output=True, text=True, check=True
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in percentiles:
        raise SystemExit(f"wrk gave no latency distribution:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)$", out, re.M)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu = _cpu_seconds(pids) - cpu_before
    return {
        "web_cpu_ms_per_request": round(cpu * 1000 / requests, 2) if pids and requests else None,
        "p50_ms": round(_ms(percentiles["50"]), 2),
        "p90_ms": round(_ms(percentiles["90"]), 2),
        "p99_ms": round(_ms(percentiles["99"]), 2),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": requests,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sockets.group(1).strip() if sockets else "",
    }


@contextmanager
def _profiled(web_pid: int | None, seconds: int, into: Path | None) -> Iterator[None]:
    """py-spy (GIL holder only) on every web process while the block runs: one speedscope
    file per process in ``into`` (open them at https://www.speedscope.app)."""
    if into is None or web_pid is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    pids = [pid for pid in _tree(web_pid) if pid != web_pid] or [web_pid]
    spy = str(Path(sys.executable).with_name("py-spy"))
    recorders = [
        subprocess.Popen(  # noqa: S603
            [spy, "record", "--gil", "-r", "200", "-d", str(seconds), "-f", "speedscope"]
            + ["-o", str(into / f"web-{pid}.json"), "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.wait(timeout=seconds + 60)


def measure(
    url: str,
    token: str,
    *,
    connections: int,
    seconds: int,
    web_pid: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Warm up, then /projects (signed in) and /health at ``connections`` connections."""
    wrk(f"{url}/projects", connections=connections, seconds=3, token=token)
    wrk(f"{url}/health", connections=connections, seconds=2, token=None)
    figures = {"connections": connections, "seconds": seconds, "web_pid": web_pid}
    with _profiled(web_pid, seconds, profile):
        projects = wrk(f"{url}/projects", token=token, **figures)  # type: ignore[arg-type]
    return {
        "GET /projects": projects,
        "GET /health": wrk(f"{url}/health", token=None, **figures),  # type: ignore[arg-type]
    }


@contextmanager
def stack(web_processes: int) -> Iterator[tuple[str, int]]:
    """A worker and the web tier on a free port; yields the base URL and the web's pid."""
    port = _free_port()
    celery = str(Path(sys.executable).with_name("celery"))
    worker = [celery, "-A", "config", "worker", "-Q", "llm,sandbox,default", "--pool", "threads"]
    worker += ["-c", "4", "-n", "bench-api@%h", "--without-mingle", "--without-gossip"]
    web = [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(port)]
    web += ["--application-close-timeout", "10", "config.asgi:application"]
    with (
        _process(worker, _env()),
        _process(web, _env(WEB_PROCESSES=str(web_processes))) as server,
    ):
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        yield url, server.pid


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("web processes", "path", "p50 ms", "p90 ms", "p99 ms", "req/s", "non-2xx", "CPU ms/req")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for row in rows:
        for path, figures in row["results"].items():
            lines.append(
                " | ".join(
                    str(v)
                    for v in (
                        row["web_processes"],
                        path,
                        figures["p50_ms"],
                        figures["p90_ms"],
                        figures["p99_ms"],
                        round(figures["requests_per_second"]),
                        figures["non_2xx"],
                        figures["web_cpu_ms_per_request"],
                    )
                )
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--web-processes", type=int, nargs="*", default=None)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--url", help="benchmark a running server instead")
    parser.add_argument("--token", help="access token for --url")
    parser.add_argument("--label", default="", help="a note stored with the figures")
    parser.add_argument(
        "--profile", type=Path, help="record py-spy profiles of the web processes under load here"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    load_before = os.getloadavg()
    rows = []
    if args.url:
        token = args.token or _seed()
        rows.append(
            {
                "web_processes": "?",
                "results": measure(
                    args.url, token, connections=args.connections, seconds=args.seconds
                ),
            }
        )
    else:
        subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=_env(),
            check=True,
        )
        token = _seed()
        counts = args.web_processes or [int(os.environ.get("WEB_PROCESSES", "0") or 0)]
        for count in counts:
            with stack(count) as (url, pid):
                results = measure(
                    url,
                    token,
                    connections=args.connections,
                    seconds=args.seconds,
                    web_pid=pid,
                    profile=args.profile / f"{count}-processes" if args.profile else None,
                )
            rows.append({"web_processes": count or "one per CPU", "results": results})
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "connections": args.connections,
        "seconds": args.seconds,
        "rows": rows,
    }
    print(_table(rows))
    print(
        f"\n{os.cpu_count()} CPUs; load average before {report['machine']['load_average_before']}"
        f", after {report['machine']['load_average_after']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
