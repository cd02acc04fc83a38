"""Several hosts, simulated on one machine: each process type with a disk of its own.

Web (with beat), the llm worker and the sandbox worker run as separate processes, each with
its own ``MEDIA_ROOT`` (nothing on disk is shared: a local path one of them wrote would be
missing for the others), sharing only what hosts share in a deployment: PostgreSQL, Redis
and the artifacts on S3 (moto's server). A run started through the API completes, its zip
downloads from the web host with every file, and the terminal (on the web host) shows them;
every tester step ran the tests in the sandbox host's bubblewrap (no static review).
"""

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from pipeline.models import Event, Run, Step
from projects.models import Artifact
from tests.conftest import access_token_for
from tests.net import ROOT, subprocess_env, web_server
from tests.pipeline.conftest import wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUCKET = "aiflow-multihost"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3(endpoint: str = "") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def host_env(s3_endpoint: str, tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """The environment of one simulated host: its own MEDIA_ROOT, the shared S3 bucket."""

    def env(host: str) -> dict[str, str]:
        media = tmp_path / host / "media"
        media.mkdir(parents=True, exist_ok=True)
        return subprocess_env(
            MEDIA_ROOT=str(media),
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=s3_endpoint,
            AWS_S3_REGION_NAME="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            SANDBOX_TESTS_ENABLED="true",
            LOG_LEVEL="WARNING",
        )

    return env


@pytest.fixture
def hosts(host_env: Callable[[str], dict[str, str]], tmp_path: Path) -> Iterator[str]:
    """Web (and beat) on host "web", the llm worker on "llm", the sandbox worker on "sandbox"."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    commands = {
        "beat": (
            "web",
            [*celery, "beat", "-s", str(tmp_path / "web" / "beat-schedule"), "-l", "WARNING"],
        ),
        "llm": (
            "llm",
            [*celery, "worker", "-Q", "llm,default", "--pool", "threads", "-c", "8",
             "-n", "llm@multihost-llm", "-l", "WARNING"],
        ),
        "sandbox": (
            "sandbox",
            [*celery, "worker", "-Q", "sandbox", "--pool", "prefork", "-c", "1",
             "-n", "sandbox@multihost-sandbox", "-l", "WARNING"],
        ),
    }  # fmt: skip
    started: list[subprocess.Popen] = []
    try:
        for name, (host, argv) in commands.items():
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(
                subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=host_env(host),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        with web_server(env=host_env("web")) as (base_url, _):
            yield base_url
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # The web host stopped with the terminal's workspace possibly still mounted (its
        # socket cancelled mid-release); the next web process there would unmount it, but
        # none starts: leave no mount behind under the test's directory.
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1]
            if target.startswith(f"{tmp_path}/"):
                subprocess.run(["umount", "-l", target], check=False)  # noqa: S603, S607


async def terminal_listing(ws_url: str, origin: str) -> str:
    """What ``find . -type f`` prints in the project's terminal."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    output = ""
    async with connect(ws_url, origin=Origin(origin), open_timeout=30) as socket:
        await socket.send(
            json.dumps({"type": "input", "data": "find . -type f; echo END-$((6*7))\n"})
        )
        deadline = time.monotonic() + 60
        while "END-42" not in output and time.monotonic() < deadline:
            frame = await asyncio.wait_for(socket.recv(), timeout=60)
            output += frame if isinstance(frame, str) else frame.decode()
    return _ESCAPES.sub("", output)


def test_a_run_on_separate_hosts_completes_downloads_and_shows_in_the_terminal(
    hosts: str, project: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    client = httpx.Client(
        base_url=hosts,
        headers={"Authorization": f"Bearer {access_token_for(project.owner)}"},
        timeout=60,
    )

    response = client.post(
        f"/projects/{project.id}/generate", json={"prompt": "A packing list for trips"}
    )
    run = wait_for_run(response.json()["run_id"], timeout=600)
    download = client.get(f"/projects/{project.id}/download", params={"run": run.id})
    ticket = client.post(f"/projects/{project.id}/terminal/ticket")
    listing = asyncio.run(terminal_listing(ticket.json()["ws_url"], hosts))

    paths = sorted(Artifact.objects.filter(run=run).values_list("path", flat=True))
    keys = [item["Key"] for item in s3(s3_endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert (run.status, run.error) == (Run.Status.COMPLETED, "")
    assert response.status_code == 202
    assert download.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(download.content)).namelist()) == paths
    assert len(keys) == len(set(Artifact.objects.filter(run=run).values_list("sha256", flat=True)))
    assert ticket.status_code == 201
    assert {f"./{path}" for path in paths} <= set(listing.splitlines())
    # The tests ran for real in the sandbox host's bubblewrap, not as a static review.
    testers = list(Step.objects.filter(run=run, role="tester", status=Step.Status.SUCCEEDED))
    modes = {(s.output.get("mode"), (s.output.get("report") or {}).get("mode")) for s in testers}
    assert (len(testers) > 0, modes) == (True, {("sandbox", "bubblewrap")})
    assert min(s.output["report"]["tests"]["passed"] for s in testers) > 0
    results = Event.objects.filter(run=run, type="test.result").values_list("payload", flat=True)
    assert {result["mode"] for result in results} == {"sandbox"}
    # No host kept an artifact blob on its own disk: they all live in the bucket.
    assert not [p for p in tmp_path.glob("*/media/blobs/**/*") if p.is_file()]
