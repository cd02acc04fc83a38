"""The check round's driver: runs ruff, the security scan and pytest one after another in ONE
sandbox.

Run inside the sandbox as ``python -I -c <this source> <config json>`` (it imports nothing
of the platform). It prints one framed section per tool on its stdout::

    <nonce> <name> <byte length>\\n<JSON {code, stdout, stderr} of that length>\\n

The static tools (ruff, the security scan) only read the tree, and run first, each a process
of its own: their sections are in the pipe before any generated code runs, so code started
by pytest cannot rewrite what they said (the host reads the first section of each name and
ignores any later one). Pytest runs last, in this interpreter (``"in_process"``: no second
Python to start, which was a third of a round's CPU), with plugin autoload off and only the
plugins the checks need (``-p``); its output is caught at the file descriptors, and its
verdict comes from its JSON report, as before. The collector stays off while the driver and
pytest load, and what they loaded is frozen before the tests run (pytest collects several
times as it ends): together about an eighth of pytest's CPU. Generated code it runs could forge that
report or this section either way; the verdict's trust rests on the sandbox, not on them.
"""

import gc

# No collector passes while the driver and pytest load (some 200 modules): they only walk
# objects that live on; what is loaded is frozen before the tests run (see _pytest_here).
gc.disable()

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402


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


def _pytest_here(args: list, env: dict) -> dict:
    """``python -m pytest <args>`` in this interpreter, its output caught at fds 1 and 2."""
    os.environ.update(env)
    sys.path.insert(0, os.getcwd())  # as ``python -m`` puts the working directory first
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            import pytest

            # pytest's own gc.collect() calls at the end then skip what it loaded.
            gc.freeze()
            gc.enable()
            code = int(pytest.main(args))
        except SystemExit as exc:  # a conftest that exits
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - reported like a crashed pytest
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        out.seek(0)
        err.seek(0)
        return {
            "code": code,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def main() -> None:
    config = json.loads(sys.argv[1])
    nonce = str(config["nonce"])
    env = dict(os.environ)
    for tool in config["tools"]:
        if tool.get("in_process"):
            result = _pytest_here(tool["argv"], tool.get("env", {}))
        else:
            tool_env = {**env, **tool.get("env", {})}
            result = _run(tool["argv"], tool_env, float(tool["timeout"]))
        _section(nonce, tool["name"], result)


main()
