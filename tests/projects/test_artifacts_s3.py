"""Artifacts on S3: the real boto3 / django-storages stack against moto's server."""

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pipeline.models import Run
from projects.artifacts import artifact_read, artifact_store_tree, artifact_zip_bytes
from projects.models import Artifact
from projects.storage import sha256_hex

pytestmark = pytest.mark.django_db

BUCKET = "aiflow-artifacts-test"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS).create_bucket(
        Bucket=BUCKET
    )
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)


@pytest.fixture(autouse=True)
def _s3_storage(settings: Any, s3_endpoint: str, s3: Any) -> Iterator[None]:
    """The "artifacts" storage on the moto bucket, emptied after each test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "location": "artifacts",
                "default_acl": None,
                "file_overwrite": True,
            },
        },
    }
    yield
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture
def run(project: Any) -> Run:
    return Run.objects.create(project=project, created_by=project.owner, prompt="p")


def bucket_keys(s3: Any) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_blobs_land_in_the_bucket_under_their_content_address(run: Run, s3: Any) -> None:
    artifact_store_tree(run=run, files={"a.txt": "alpha", "b.txt": "beta"})

    assert bucket_keys(s3) == sorted(
        f"artifacts/blobs/{sha[:2]}/{sha}" for sha in (sha256_hex(b"alpha"), sha256_hex(b"beta"))
    )


def test_the_bucket_object_holds_the_files_bytes(run: Run, s3: Any) -> None:
    artifact_store_tree(run=run, files={"a.txt": "alpha"})
    sha = sha256_hex(b"alpha")

    body = s3.get_object(Bucket=BUCKET, Key=f"artifacts/blobs/{sha[:2]}/{sha}")["Body"].read()

    assert body == b"alpha"


def test_storing_again_writes_no_new_object_or_row(run: Run, s3: Any, project: Any) -> None:
    artifact_store_tree(run=run, files={"a.txt": "alpha", "b.txt": "alpha"})
    second = Run.objects.create(project=project, prompt="again")

    artifact_store_tree(run=run, files={"a.txt": "alpha", "b.txt": "alpha"})
    artifact_store_tree(run=second, files={"c.txt": "alpha"})

    assert (len(bucket_keys(s3)), Artifact.objects.count()) == (1, 3)


def test_artifacts_read_back_from_the_bucket(run: Run) -> None:
    artifact_store_tree(run=run, files={"bin/x": b"\x00\xff", "t.txt": "text"})

    contents = {a.path: artifact_read(artifact=a) for a in Artifact.objects.filter(run=run)}

    assert contents == {"bin/x": b"\x00\xff", "t.txt": b"text"}


def test_the_zip_is_built_from_the_bucket(run: Run) -> None:
    artifact_store_tree(run=run, files={"src/app.py": "print('hi')\n"})

    with zipfile.ZipFile(io.BytesIO(artifact_zip_bytes(run=run))) as archive:
        assert archive.read("src/app.py") == b"print('hi')\n"


def test_setting_the_bucket_name_selects_the_s3_backend() -> None:
    env = {
        **os.environ,
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "s = settings.STORAGES['artifacts']; print(s['BACKEND'], s['OPTIONS']['bucket_name'])"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()

    assert out == ["storages.backends.s3.S3Storage", BUCKET]


def test_without_a_bucket_artifacts_stay_on_the_local_filesystem() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_STORAGE_BUCKET_NAME"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    code = (
        "import django; django.setup(); from django.core.files.storage import storages; "
        "print(type(storages['artifacts']).__name__)"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()

    assert out == ["FileSystemStorage"]
