"""The real stack for the benchmarks: its own database and Redis, the Procfile's processes.

``Stack`` creates (drops and recreates) a PostgreSQL database of its own and migrates it,
empties its Redis db, and starts the processes of the ``Procfile`` (the same command lines
``make up`` runs: daphne web, the llm and sandbox workers, beat) on that database and Redis,
each in its own process group with its log under ``var/bench/``. It can stop, kill and
restart one of them (the fault suite does), start the Celery peer's worker, and count the
CPU seconds of each process type with everything it started: from a cpuacct cgroup per
type where the machine allows one (root, cgroup v1: sandboxed processes included), else
from ``/proc`` (the process tree, with the children it reaped; processes that bwrap reaped
inside its pid namespace are missed there, and the figure says so).

The bench process itself uses the same database and Redis through Django (``django_setup``)
to create users and to read the rows it measures; everything a user does goes through HTTP
(``Api``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.database import migrated_database
from config.llm_worker import plan_for_env

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
PASSWORD = "Bench-Password-42!"  # noqa: S105 - the bench's own throwaway account
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROLES = ("web", "worker_llm", "worker_sandbox", "beat")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Wait until something accepts connections on ``port``; fail if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """The Procfile's process types and command lines."""
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


# --- CPU accounting from /proc ----------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLOCK_TICKS


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds used by ``root_pid`` and all its descendants, live or already reaped.

    A live process's utime+stime is its own; cutime+cstime holds the children it has reaped
    (with theirs). Summing both over the live tree counts everything once.
    """
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                stats[int(entry)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(children.get(pid, []))
    return total


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def cpuacct_group(name: str) -> Path | None:
    """A cpuacct cgroup (v1) of this name, or None where cgroups are not writable.

    Everything a process in it starts stays in it and is counted, including what bwrap
    reaps inside its own pid namespace (which ``/proc``'s reaped-children times never see).
    """
    group = CPUACCT / name
    try:
        group.mkdir(exist_ok=True)
        (group / "cpuacct.usage").read_text()
    except OSError:
        return None
    return group


def cpuacct_seconds(group: Path) -> float:
    return int((group / "cpuacct.usage").read_text()) / 1e9


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting) so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """A database, a Redis db and the Procfile's processes on them."""

    name: str
    db_name: str
    redis_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    flower_port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    cpu_of_exited: dict[str, float] = field(default_factory=dict)
    # A cpuacct cgroup per role where the machine lets us make one (see ``cpuacct_group``).
    cpu_groups: dict[str, Path | None] = field(default_factory=dict)
    # (role, time.time(), exit status) of every process that exited without being stopped.
    crashes: list[tuple[str, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._supervising = threading.Event()
        self.port = self.port or free_port()
        self.flower_port = self.flower_port or free_port()
        self.logs = VAR / self.name
        self.logs.mkdir(parents=True, exist_ok=True)
        self.media_root = VAR / self.name / "media"

    @property
    def database_url(self) -> str:
        base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
        return f"{base.rstrip('/')}/{self.db_name}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every process of the stack (and of the bench's Django)."""
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": self.redis_url,
            "MEDIA_ROOT": str(self.media_root),
            "AIFLOW_PORT": str(self.port),
            "WEB_BIND": "127.0.0.1",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "RATE_LIMIT_USER": "100000000/minute",
            "RATE_LIMIT_GENERATE": "100000/hour",
            "RATE_LIMIT_LOGIN": "100000/minute",
            # Figure 4 watches one run from 50 clients of one user: above the per-user cap
            # on open streams (10 by default), which is a guard, not what is measured.
            "EVENTS_STREAMS_PER_USER": "1000",
            "ACCOUNTS_ACCESS_TOKEN_MINUTES": "120",
            "BENCH_PEER_REDIS_URL": self.redis_url,
            "FLOWER_PORT": str(self.flower_port),
            "FLOWER_ADDRESS": "127.0.0.1",
            "FLOWER_BASIC_AUTH": f"bench:{PASSWORD}",
            **self.env_extra,
            **extra,
        }
        for name in ("PROMETHEUS_MULTIPROC_DIR", "TEST_REDIS_URL", "TEST_DB_NAME"):
            env.pop(name, None)
        return env

    def prepare_database(self) -> None:
        """Drop and recreate the stack's database, migrate it, empty its Redis db."""
        import redis

        migrated_database(self.database_url, self.db_name, root=ROOT, env=self.env())
        redis.Redis.from_url(self.redis_url).flushdb()

    # processes -------------------------------------------------------------------------------

    def start(self, role: str, *, command: str | None = None, **extra: str) -> subprocess.Popen:
        """Start one Procfile process type (or ``command``) in its own process group."""
        with self._lock:
            return self._start(role, command=command, **extra)

    def _start(self, role: str, *, command: str | None = None, **extra: str) -> subprocess.Popen:
        line = command or procfile()[role]
        log = (self.logs / f"{role}.log").open("ab")
        group = self.cpu_group_for(role)

        def join_group() -> None:
            # In the child, before bash runs: whatever it starts is born in the group (moved
            # after the fact, a command line of several ``&`` jobs had forked some already).
            if group is not None:
                (group / "cgroup.procs").write_text(str(os.getpid()))

        process = subprocess.Popen(
            ["bash", "-c", line],
            cwd=ROOT,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_group,  # noqa: PLW1509 - the bench starts processes from one thread
        )
        self.processes[role] = process
        if role == "web":
            wait_listening(self.port, process)
        return process

    def cpu_group_for(self, role: str) -> Path | None:
        """The cpuacct cgroup of ``role`` (made on first use), or None where there is none."""
        if role not in self.cpu_groups:
            self.cpu_groups[role] = cpuacct_group(f"aiflow-bench-{self.name}-{role}")
        return self.cpu_groups[role]

    def start_all(self, roles: tuple[str, ...] = ROLES, **extra: str) -> None:
        for role in roles:
            self.start(role, **extra)
        self.wait_workers([r for r in roles if r.startswith("worker")])

    def wait_workers(self, roles: list[str], timeout: float = 90) -> None:
        """Wait until each worker answers a ping (its consumers are up)."""
        from config.celery import app

        lines = procfile()
        wanted = set()
        for role in roles:
            if "config.llm_worker" in lines.get(role, ""):  # one node per llm process
                wanted |= {f"{name}@" for name, _ in plan_for_env(self.env())}
                continue
            # The node name the Procfile gives the worker (``-n sandbox@%h``), up to the host.
            found = re.search(r"(?:-n|--hostname)[ =](\S+?)@", lines.get(role, ""))
            wanted.add(f"{found.group(1) if found else role}@")
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for role in roles:
                process = self.processes.get(role)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{role} exited with {process.returncode}; see its log")
            try:
                replies = app.control.ping(timeout=1.0) or []
            except Exception:  # the broker is (re)starting: ask again
                replies = []
            answered = {name for reply in replies for name in reply}
            wanted = {w for w in wanted if not any(a.startswith(w) for a in answered)}
            if wanted:
                time.sleep(0.5)
        if wanted:
            raise TimeoutError(f"workers {sorted(wanted)} did not answer within {timeout}s")

    def send_signal(self, role: str, sig: int) -> None:
        """Send ``sig`` to the whole process group of ``role``."""
        process = self.processes[role]
        if process.poll() is None:
            os.killpg(process.pid, sig)

    def stop(self, role: str, *, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop ``role`` (``sig`` to its group, SIGKILL after ``timeout``); keep its CPU time."""
        with self._lock:
            self._stop(role, sig=sig, timeout=timeout)

    def _stop(self, role: str, *, sig: int, timeout: float) -> None:
        process = self.processes.pop(role, None)
        if process is None:
            return
        self.cpu_of_exited[role] = self.cpu_of_exited.get(role, 0.0) + tree_cpu_seconds(process.pid)
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                process.wait()
        # Whatever the group left behind (a prefork child that outlived its parent) goes too.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        """Kill ``role``'s process group at once (a crash, as the fault suite wants it)."""
        self.stop(role, sig=sig, timeout=60)

    def supervise(self, interval: float = 0.5) -> None:
        """Restart any process that exits unasked, like systemd's or Docker's restart policy.

        Each such exit is kept in ``crashes``.
        """
        if self._supervising.is_set():
            return
        self._supervising.set()

        def watch() -> None:
            while self._supervising.is_set():
                with self._lock:
                    for role, process in list(self.processes.items()):
                        if process.poll() is not None:
                            self.crashes.append((role, time.time(), process.returncode))
                            self.processes.pop(role)
                            self._start(role)
                time.sleep(interval)

        threading.Thread(target=watch, name="bench-supervisor", daemon=True).start()

    def cpu_seconds(self, roles: tuple[str, ...] | list[str]) -> float:
        """CPU seconds of ``roles`` so far (processes and descendants, stopped ones too)."""
        total = 0.0
        for role in roles:
            group = self.cpu_groups.get(role)
            if group is not None:  # everything the role ever started, sandboxes included
                total += cpuacct_seconds(group)
                continue
            total += self.cpu_of_exited.get(role, 0.0)
            process = self.processes.get(role)
            if process is not None:
                total += tree_cpu_seconds(process.pid)
        return total

    def start_peer_worker(self) -> subprocess.Popen:
        """The bare Celery peer's worker: as many processes and threads as the llm worker."""
        plan = plan_for_env(self.env())
        nodes = [(f"peer{n}", threads) for n, (_, threads) in enumerate(plan)]
        worker = f"{shlex.quote(sys.executable)} -m celery -A bench.peer_celery worker -Q peer"
        command = " ".join(
            f"{worker} --pool threads -c {threads} -n {name}@%h --without-mingle "
            "--without-gossip --loglevel WARNING &"
            for name, threads in nodes
        )
        process = self.start("peer_worker", command=f"{command} wait")
        from bench.peer_celery import app

        wanted = [f"{name}@{socket.gethostname()}" for name, _ in nodes]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the peer worker exited; see var/bench/*/peer_worker.log")
            with suppress(Exception):  # the broker is (re)starting: ask again
                if len(app.control.ping(destination=wanted, timeout=1.0) or []) == len(wanted):
                    return process
            time.sleep(0.5)
        raise TimeoutError("the peer worker did not answer")

    def close(self) -> None:
        self._supervising.clear()
        for role in list(self.processes):
            self.stop(role, timeout=30)
        for group in self.cpu_groups.values():
            if group is not None:
                with suppress(OSError):  # still holds a process: left for the kernel
                    group.rmdir()


@contextmanager
def running(stack: Stack, roles: tuple[str, ...] = ROLES, **extra: str) -> Iterator[Stack]:
    """``stack`` with ``roles`` started; everything stopped on the way out."""
    try:
        stack.start_all(roles, **extra)
        yield stack
    finally:
        stack.close()


def django_setup(stack: Stack, *, application_name: str = "") -> None:
    """Point this process's Django at the stack's database and Redis, and set it up.

    ``application_name`` names this process's PostgreSQL connections (the fault suite spares
    its own when it cuts the stack's).
    """
    import django

    env = stack.env()
    if application_name:
        env["DATABASE_URL"] = f"{env['DATABASE_URL']}?application_name={application_name}"
    for name in (
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "MEDIA_ROOT",
        "DJANGO_DEBUG",
        "BENCH_PEER_REDIS_URL",
        "LOG_LEVEL",
    ):
        os.environ[name] = env[name]
    for name in ("PROMETHEUS_MULTIPROC_DIR", "TEST_REDIS_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    django.setup()


# --- a user of the API --------------------------------------------------------------------------


class Api:
    """A signed-in user of the stack's HTTP API (one account per ``email``)."""

    def __init__(self, stack: Stack, *, email: str = "bench@example.com"):
        from accounts.models import User

        self.stack = stack
        self.email = email
        if not User.objects.filter(email=email).exists():
            User.objects.create_user(username=email.split("@")[0], email=email, password=PASSWORD)
        self.http = httpx.Client(base_url=stack.base_url, timeout=60)
        self.token = self.login()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def login(self) -> str:
        response = self.http.post("/auth/login", json={"email": self.email, "password": PASSWORD})
        response.raise_for_status()
        return str(response.json()["access"])

    def project(self, name: str) -> int:
        response = self.http.post("/projects", json={"name": name, "description": "bench"})
        response.raise_for_status()
        return int(response.json()["id"])

    def generate(self, project_id: int, prompt: str, **options: Any) -> int:
        body: dict[str, Any] = {"prompt": prompt, "base_run": None}
        if options:
            body["options"] = options
        response = self.http.post(f"/projects/{project_id}/generate", json=body)
        response.raise_for_status()
        return int(response.json()["run_id"])


def wait_runs(run_ids: list[int], *, timeout: float = 900, poll: float = 0.1) -> dict[int, Any]:
    """Wait until every run has finished (or ``timeout``); their rows."""
    from pipeline.models import Run

    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        done = Run.objects.filter(id__in=pending, status__in=Run.FINISHED).values_list(
            "id", flat=True
        )
        pending -= set(done)
        if pending:
            time.sleep(poll)
    return {run.id: run for run in Run.objects.filter(id__in=run_ids)}
