#!/usr/bin/env python
"""CPU seconds of one tester check round (ruff, the security scan, pytest in the sandbox).

Usage: ``.venv/bin/python bench/sandbox_checks.py [ROUNDS]`` as root (the sandbox's uid pool
and workspace filesystems need it); the security scan is ``SANDBOX_SECURITY_SCANNER``'s (ruff's
S rules by default, ``SANDBOX_SECURITY_SCANNER=bandit`` for bandit). Everything the round
starts is counted, wherever it runs: this process is moved into a cpuacct cgroup of its own
(cgroup v1, when writable), so processes bwrap reaps in its pid namespace count too; without
one, this process and its waited-for children are counted (``getrusage``), which misses the
namespace's reaped processes.
"""

import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

CALC = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _cgroup() -> Path | None:
    group = CPUACCT / f"aiflow-bench-{os.getpid()}"
    try:
        group.mkdir(exist_ok=True)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return None
    return group


def _cpu(group: Path | None) -> float:
    if group is not None:
        return int((group / "cpuacct.usage").read_text()) / 1e9
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    group = _cgroup()
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    from django.conf import settings

    from projects.checks import run_test_checks

    files = {"calc.py": CALC, "tests/test_calc.py": TESTS}
    run_test_checks(files=files)  # warm caches (page cache, the seccomp program)
    figures = []
    for _ in range(rounds):
        cpu, wall = _cpu(group), time.monotonic()
        report = run_test_checks(files=files)
        figures.append((_cpu(group) - cpu, time.monotonic() - wall))
        if not report.passed:
            raise SystemExit(f"the check round failed: {report.as_dict()}")
    if group is not None:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        group.rmdir()
    figures.sort()
    cpu, wall = figures[len(figures) // 2]
    method = "cpuacct cgroup" if group is not None else "getrusage"
    print(f"sandbox environment: {settings.SANDBOX_VENV}")
    print(f"security scan: {settings.SANDBOX_SECURITY_SCANNER}")
    print(f"CPU per check round, median of {rounds} ({method}): {cpu:.2f} s; wall {wall:.2f} s")


if __name__ == "__main__":
    main()
