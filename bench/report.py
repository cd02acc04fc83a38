"""The one table a benchmark prints, and the JSON file it writes beside it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
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


def table(rows: list[Row], *, headers: dict[str, str] | None = None) -> str:
    """The rows as a Markdown table (columns without any value left out).

    ``headers`` renames columns (the fault table puts its own figures in them).
    """
    names = {
        "group": "#",
        "figure": "figure",
        "ours": "aiflow",
        "langgraph": "LangGraph",
        "celery": "Celery canvas",
        "target": "target",
        "note": "note",
        **(headers or {}),
    }
    keys = [k for k in names if k in ("group", "figure") or any(getattr(r, k) for r in rows)]
    lines = [
        "| " + " | ".join(names.get(k, k) for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in rows:
        cells = [str(getattr(row, k)).replace("|", "/") for k in keys]
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


def write(path: Path, *, title: str, rows: list[Row], details: dict[str, Any]) -> dict[str, Any]:
    """Write the JSON result (rows, details, date, machine); return it."""
    result = {
        "title": title,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": [asdict(row) for row in rows],
        "details": details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result
