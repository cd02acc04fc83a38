"""HTTP load with wrk (Debian package ``wrk``): latency percentiles and requests per second."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse(output: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output: p50/p75/p90/p99 in ms, req/s, failures."""
    latency = {
        f"p{pct}": float(value) * _UNITS[unit] for pct, value, unit in _LATENCY.findall(output)
    }
    rate = _RATE.search(output)
    requests = _REQUESTS.search(output)
    non_2xx = _NON_2XX.search(output)
    errors = _ERRORS.search(output)
    return {
        **latency,
        "rps": float(rate.group(1)) if rate else None,
        "requests": int(requests.group(1)) if requests else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def available() -> bool:
    return shutil.which("wrk") is not None


def load(
    url: str, *, connections: int, seconds: int, threads: int = 2, token: str | None = None
) -> dict[str, Any]:
    """``wrk`` against ``url`` with ``connections`` open connections for ``seconds``."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    result = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return parse(result.stdout)
