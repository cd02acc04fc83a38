"""Proportional memory (PSS) of the stack's processes, from ``/proc/<pid>/smaps_rollup``.

PSS shares every page among the processes that map it: a page four processes share counts
a quarter in each. Summed over a set of processes it is what that set costs the machine, so
processes that fork after loading the application (and share its pages copy-on-write) show
it, where the resident size (RSS) counts a shared page once in every process.

``tree_pids`` finds a process and all its descendants; ``pss_kb`` reads one process;
``role_memory`` sums a role's tree; ``Sampler`` keeps, in a thread, the peak of the whole
stack's sum while something runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree_pids(root: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``root`` and its live descendants."""
    children = _children_map() if children is None else children
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_kb(pid: int) -> int | None:
    """The process's proportional set size in kB, or None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def rss_kb(pid: int) -> int | None:
    """The process's resident set size in kB, or None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class RoleMemory:
    """A role's processes: how many, their PSS and RSS summed (MB)."""

    processes: int = 0
    pss_mb: float = 0.0
    rss_mb: float = 0.0
    # (pid, command, PSS MB) of each process, for the details.
    each: list[tuple[int, str, float]] = field(default_factory=list)


def role_memory(root: int, children: dict[int, list[int]] | None = None) -> RoleMemory:
    """The memory of ``root``'s process tree (the shells that only ``exec`` count as 0)."""
    found = RoleMemory()
    for pid in tree_pids(root, children):
        pss, rss = pss_kb(pid), rss_kb(pid)
        if pss is None:
            continue
        found.processes += 1
        found.pss_mb += pss / 1024
        found.rss_mb += (rss or 0) / 1024
        found.each.append((pid, command_name(pid), round(pss / 1024, 1)))
    return found


def stack_memory(roots: dict[str, int]) -> dict[str, RoleMemory]:
    """The memory of each role's tree, ``roots`` mapping role -> its root pid."""
    children = _children_map()
    return {role: role_memory(pid, children) for role, pid in roots.items()}


def total_pss_mb(memory: dict[str, RoleMemory]) -> float:
    return sum(role.pss_mb for role in memory.values())


class Sampler:
    """The peak of the stack's total PSS, sampled every ``interval`` seconds in a thread.

    ``roots`` is called at each sample (processes may be restarted meanwhile).
    """

    def __init__(self, roots: Callable[[], dict[str, int]], interval: float = 0.5) -> None:
        self.roots, self.interval = roots, interval
        self.peak_mb = 0.0
        self.peak: dict[str, RoleMemory] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            memory = stack_memory(self.roots())
            total = total_pss_mb(memory)
            if total > self.peak_mb:
                self.peak_mb, self.peak = total, memory
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def as_table(memory: dict[str, RoleMemory], roles: Iterable[str] | None = None) -> list[dict]:
    """Rows for the details: role, processes, PSS and RSS in MB."""
    return [
        {
            "role": role,
            "processes": memory[role].processes,
            "pss_mb": round(memory[role].pss_mb, 1),
            "rss_mb": round(memory[role].rss_mb, 1),
            "each": memory[role].each,
        }
        for role in (roles or memory)
        if role in memory
    ]
