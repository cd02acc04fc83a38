"""The check round's driver: runs ruff, bandit and pytest one after another in ONE sandbox.

Run inside the sandbox as ``python -I -c <this source> <config json>`` (it imports nothing
of the platform). It prints one framed section per tool on its stdout::

    <nonce> <name> <byte length>\\n<JSON {code, stdout, stderr} of that length>\\n

The static tools (ruff, bandit) only read the tree, and run first: their sections are in
the pipe before any generated code runs, so code started by pytest cannot rewrite what they
said (the host reads the first section of each name and ignores any later one). Pytest runs
last, with plugin autoload off and only the plugins the checks need (``-p``); its verdict
comes from its JSON report, as before.
"""

import json
import os
import subprocess
import sys


def _section(nonce: str, name: str, result: dict) -> None:
    payload = json.dumps(result).encode()
    out = sys.stdout.buffer
    out.write(f"{nonce} {name} {len(payload)}\n".encode())
    out.write(payload)
    out.write(b"\n")
    out.flush()


def _run(argv: list, env: dict, timeout: float) -> dict:
    try:
        done = subprocess.run(  # noqa: S603 - fixed tools, inside the sandbox
            argv, capture_output=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        return {"code": 124, "stdout": out.decode("utf-8", "replace"), "stderr": "timed out"}
    except OSError as exc:
        return {"code": 127, "stdout": "", "stderr": str(exc)}
    return {
        "code": done.returncode,
        "stdout": done.stdout.decode("utf-8", "replace"),
        "stderr": done.stderr.decode("utf-8", "replace"),
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    nonce = str(config["nonce"])
    env = dict(os.environ)
    for tool in config["tools"]:
        tool_env = {**env, **tool.get("env", {})}
        _section(nonce, tool["name"], _run(tool["argv"], tool_env, float(tool["timeout"])))


main()
