"""The one table a benchmark prints, and the JSON file it writes beside it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOT_AVAILABLE = "not available yet"


@dataclass
class Row:
    """One line of the table: a figure for the platform, its peers, and the target."""

    group: str
    figure: str
    ours: str = ""
    langgraph: str = ""
    celery: str = ""
    target: str = ""
    note: str = ""


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """``value`` with ``digits`` decimals and its unit; "-" for no value."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def ratio(value: float | None) -> str:
    return fmt(value, "x", 2)


BENCH_COLUMNS = {
    "group": "#",
    "figure": "figure",
    "ours": "aiflow",
    "langgraph": "LangGraph",
    "celery": "Celery canvas",
    "target": "target",
    "note": "note",
}


def table(rows: list[Any], *, columns: dict[str, str] | None = None) -> str:
    """Dataclass rows as a Markdown table; ``columns`` maps fields to headers, in order.

    Columns that no row fills are left out (the first two always stay).
    """
    names = columns or BENCH_COLUMNS
    keys = [k for i, k in enumerate(names) if i < 2 or any(str(getattr(r, k)) for r in rows)]
    lines = [
        "| " + " | ".join(names[k] for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in rows:
        cells = [" ".join(str(getattr(row, k)).replace("|", "/").split()) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were taken on: CPU, cores, load, commit."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }


_REFERENCE = {"a": list(range(100)), "b": "x" * 100}


def reference_loop_us(loops: int = 2000, repeat: int = 5) -> float:
    """How fast the machine runs Python right now: the CPU microseconds of a fixed loop (a JSON
    round trip and a sort of 1,000 numbers), the best of ``repeat``. This machine's cores are
    shared with others: the same loop has taken 41 to 72 microseconds within one hour, and
    every absolute CPU figure moves with it; the ratios taken within one sitting do not."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(loops):
            json.loads(json.dumps(_REFERENCE))
            sorted(range(1000, 0, -1))
        best = min(best, time.process_time() - start)
    return best / loops * 1e6


def heading(result: dict[str, Any]) -> str:
    """The line above a table: what was measured, when, on what."""
    box = result["machine"]
    speed = box.get("reference_loop_us")
    return (
        f"{result['title']}. Taken {result['date']} on {box['cores']} cores ({box['cpu']}), "
        f"load average {box['load_average'][0]:.1f} at the end, commit {box['commit']}"
        + (
            f"; a reference loop of Python (bench.report.reference_loop_us) took "
            f"{speed[0]:.0f} us of CPU at the start and {speed[1]:.0f} us at the end."
            if speed
            else "."
        )
    )


@dataclass
class SideTable:
    """A second table printed under the first: its heading line, rows and columns."""

    heading: str
    rows: list[Any]
    columns: dict[str, str]


def write(
    path: Path,
    *,
    title: str,
    rows: list[Any],
    details: dict[str, Any],
    columns: dict[str, str] | None = None,
    side_tables: list[SideTable] | None = None,
    speed: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Write the JSON result (rows, details, date, machine) and the table beside it as
    Markdown (same name, ``.md``: what the README shows), with ``side_tables`` under it;
    return the result. ``speed``: ``reference_loop_us`` at the start and at the end."""
    box = machine()
    if speed is not None:
        box["reference_loop_us"] = [round(value, 1) for value in speed]
    result = {
        "title": title,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": box,
        "rows": [asdict(row) for row in rows],
        "side_tables": [
            {"heading": side.heading, "rows": [asdict(row) for row in side.rows]}
            for side in side_tables or []
        ],
        "details": details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    markdown = f"{heading(result)}\n\n{table(rows, columns=columns)}\n"
    for side in side_tables or []:
        if side.rows:
            markdown += f"\n{side.heading}\n\n{table(side.rows, columns=side.columns)}\n"
    path.with_suffix(".md").write_text(markdown)
    result["markdown"] = markdown
    return result
