"""``manage.py deliver RUN`` and ``manage.py generate --deliver``: the delivery asked for as
the API asks for it, carried out by a real worker, its branch and pull request printed."""

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from pipeline.models import Run, RunDelivery
from tests.pipeline.delivery.conftest import BASE_FILES, branch_log
from tests.pipeline.delivery.helpers import make_completed_run, make_import_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run_command(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_deliver_pushes_the_run_and_prints_its_pull_request(
    celery_worker: Any, project: Any, forge: Any, connection: Any
) -> None:
    imported = make_import_run(project, BASE_FILES, url=forge.clone_url, commit=forge.base)
    run = make_completed_run(project, {**BASE_FILES, "app.py": "print('v2')\n"}, base_run=imported)

    output = run_command("deliver", str(run.pk), "--branch", "feature/cli", "--timeout", "120")

    delivery = RunDelivery.objects.get(run=run)
    assert output.splitlines() == [
        f"Delivery of run {run.pk} to branch feature/cli: queued",
        f"Delivered: branch feature/cli at {delivery.commit}",
        f"  pull request #1 (open): {forge.server.url}/acme/app/pull/1",
    ]
    assert branch_log(forge.bare, "feature/cli") == [delivery.commit, forge.base]


def test_deliver_says_why_it_cannot(celery_worker: Any, project: Any) -> None:
    run = make_completed_run(project, {"app.py": "v2\n"})

    with pytest.raises(CommandError) as refused:
        run_command("deliver", str(run.pk))

    assert refused.value.returncode == 1
    assert str(refused.value).startswith("This project has no forge connection")


def test_generate_with_deliver_waits_for_the_pull_request(
    celery_worker: Any, no_sandbox: None, project: Any, forge: Any, connection: Any
) -> None:
    output = run_command(
        "generate", str(project.pk), "A shopping list manager", "--fresh", "--deliver",
        "--timeout", "300",
    )  # fmt: skip

    run = Run.objects.get(project=project)
    delivery = RunDelivery.objects.get(run=run)
    assert (run.status, delivery.state, delivery.trigger) == ("completed", "delivered", "generate")
    assert output.splitlines()[-3:] == [
        "Delivering to the project's forge…",
        f"Delivered: branch aiflow/run-{run.pk} at {delivery.commit}",
        f"  pull request #1 (open): {forge.server.url}/acme/app/pull/1",
    ]
