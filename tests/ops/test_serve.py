"""Several web processes serve one port; one that dies is replaced; a crash loop ends."""

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.net import ROOT, child_pids, free_port, subprocess_env, web_server
from tests.pipeline.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    fds = Path(f"/proc/{pid}/fd")
    try:
        links = {os.readlink(fd) for fd in fds.iterdir()}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


def _answers(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_web_processes_listen_on_one_port_and_a_dead_one_is_replaced():
    with web_server(env=subprocess_env(WEB_PROCESSES="2")) as (url, supervisor):
        port = int(url.rsplit(":", 1)[1])
        children = wait_until(
            lambda: (
                (found := child_pids(supervisor.pid))
                and len(found) == 2
                and all(_listening(pid, port) for pid in found)
                and found
            ),
            timeout=90,
        )
        killed = min(children)
        os.kill(killed, signal.SIGKILL)
        # (Connections queued at the killed process's socket when it died are reset.)
        wait_until(lambda: killed not in child_pids(supervisor.pid), timeout=90)

        assert _answers(url) in (200, 503)  # the other one still serves the port
        replaced = wait_until(
            lambda: (
                (found := child_pids(supervisor.pid))
                and killed not in found
                and len(found) == 2
                and all(_listening(pid, port) for pid in found)
                and found
            ),
            timeout=90,
        )
        assert _answers(url) in (200, 503)
    assert len(replaced - children) == 1
    assert supervisor.returncode == 0


def test_web_processes_that_keep_dying_end_the_server_with_an_error():
    port = free_port()
    blocker = socket.socket()  # holds the port without SO_REUSEPORT: no process can bind
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "config.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "config.asgi:application",
            ],
            cwd=ROOT,
            env=subprocess_env(WEB_PROCESSES="2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert supervisor.wait(timeout=240) == 1
    finally:
        blocker.close()
