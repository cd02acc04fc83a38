"""Delivering a run with real git and a local forge: one commit on the imported commit, the
pull request opened then updated (never a second), a retried task adding nothing, an archive
import's root commit, a ``file://`` remote, a follow-up's one new commit on the same branch."""

import logging
from typing import Any

import pytest

from pipeline.delivery.services import delivery_execute, run_deliver
from pipeline.models import Event, RunDelivery, Step
from repositories.services import forge_connection_put
from tests.git_server import git, make_bare
from tests.pipeline.delivery.conftest import BASE_FILES, TOKEN, branch_log, delivery_of
from tests.pipeline.delivery.helpers import make_completed_run, make_import_run

CHANGED = {**BASE_FILES, "app.py": "print('v2')\n", "hello.py": "def hello():\n    return 1\n"}


def deliver_now(run: Any, user: Any, **kwargs: Any) -> RunDelivery:
    """Ask for the delivery and carry it out here (the task's body, without a worker)."""
    delivery = run_deliver(run=run, user=user, **kwargs)
    delivery_execute(delivery_id=delivery.pk, attempt=delivery.attempt)
    delivery.refresh_from_db()
    return delivery


@pytest.fixture
def imported(project: Any, forge: Any) -> Any:
    return make_import_run(project, BASE_FILES, url=forge.clone_url, ref="main", commit=forge.base)


def pull_requests_calls(forge: Any) -> list[tuple[str, str]]:
    return [
        (seen.method, seen.path)
        for seen in forge.server.api_requests
        if "/pulls" in seen.path or "/merge_requests" in seen.path
    ]


@pytest.mark.parametrize("forge_kind", ["github", "gitea", "gitlab"])
def test_a_run_is_pushed_as_one_commit_on_the_imported_commit_with_a_pull_request(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported, prompt="Say v2 instead of v1")

    delivery = deliver_now(run, user)

    bare = forge.bare
    branch = f"aiflow/run-{run.pk}"
    assert (delivery.state, delivery.branch, delivery.error) == ("delivered", branch, "")
    assert branch_log(bare, branch) == [delivery.commit, forge.base]
    assert git("diff", "--name-status", forge.base, delivery.commit, cwd=bare).splitlines() == [
        "M\tapp.py",
        "A\thello.py",
    ]
    assert git("log", "-1", "--format=%an <%ae>%n%B", delivery.commit, cwd=bare) == (
        "aiflow <aiflow@users.noreply.localhost>\n"
        "Say v2 instead of v1\n\napp.py now says v2.\n\n"
        f"Run {run.pk}: http://localhost:8001/app/runs/{run.pk}\n\n"
        f"Co-authored-by: {user.email.split('@')[0]} <{user.email}>\n"
        f"Aiflow-Delivery: aiflow-run-{run.pk}"
    )
    assert [(p["head"], p["base"], p["title"]) for p in forge.pulls] == [
        (branch, "main", "Say v2 instead of v1")
    ]
    body = forge.pulls[0]["body"]
    assert "app.py now says v2." in body
    assert "Integration suite in the sandbox: 3 passed, 0 failed, 0 errors" in body
    assert "### Regressions\n\nNone." in body
    assert "$0.0123 (1,200 tokens in, 340 out)" in body
    assert f"[Run {run.pk} on aiflow](http://localhost:8001/app/runs/{run.pk})" in body
    assert (delivery.pull_request_number, delivery.pull_request_url) == (
        1,
        forge._pull_json(forge.pulls[0]).get("html_url")
        or forge._pull_json(forge.pulls[0])["web_url"],
    )
    events = list(Event.objects.filter(run=run, type__startswith="delivery.").order_by("seq"))
    assert [(e.type, e.payload.get("commit") or e.payload.get("number")) for e in events] == [
        ("delivery.pushed", delivery.commit),
        ("delivery.pull_request", 1),
    ]


def test_delivering_again_updates_the_same_pull_request_and_adds_no_commit(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)

    first = deliver_now(run, user)
    second = deliver_now(run, user)

    assert second.attempt == first.attempt + 1
    assert (second.state, second.commit, second.pull_request_number) == (
        "delivered",
        first.commit,
        1,
    )
    assert branch_log(forge.bare, first.branch) == [first.commit, forge.base]
    assert [call for call in pull_requests_calls(forge) if call[0] != "GET"] == [
        ("POST", "/repos/acme/app/pulls"),
        ("PATCH", "/repos/acme/app/pulls/1"),
    ]
    assert len(forge.pulls) == 1


def test_a_delivery_task_run_twice_pushes_one_commit(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)
    delivery = deliver_now(run, user)
    # The worker died after pushing, before its acknowledgement: the broker delivers the
    # same task (same attempt) again.
    RunDelivery.objects.filter(pk=delivery.pk).update(state="pushing", commit="")

    assert delivery_execute(delivery_id=delivery.pk, attempt=delivery.attempt) is True

    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert branch_log(forge.bare, delivery.branch) == [delivery.commit, forge.base]
    assert len(forge.pulls) == 1


def test_a_task_of_an_older_attempt_does_nothing(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)
    delivery = run_deliver(run=run, user=user)
    RunDelivery.objects.filter(pk=delivery.pk).update(attempt=delivery.attempt + 1)

    assert delivery_execute(delivery_id=delivery.pk, attempt=delivery.attempt) is False
    assert forge.server.requests == [] and forge.server.api_requests == []


def test_a_follow_up_adds_one_commit_with_its_own_change_to_the_same_branch(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)
    first = deliver_now(run, user)
    # The follow-up changes app.py again and removes hello.py, which the first run added.
    follow_up = make_completed_run(
        project, {**BASE_FILES, "app.py": "print('v3')\n"}, base_run=run, prompt="Say v3"
    )
    RunDelivery.objects.create(
        run=follow_up,
        branch=first.branch,
        state="queued",
        trigger="review",
        requested_at=first.requested_at,
    )

    delivery_execute(delivery_id=delivery_of(follow_up).pk, attempt=1)

    second = delivery_of(follow_up)
    assert second.state == "delivered", second.error
    assert branch_log(forge.bare, first.branch) == [second.commit, first.commit, forge.base]
    assert git("diff", "--name-status", first.commit, second.commit, cwd=forge.bare).split(
        "\n"
    ) == ["M\tapp.py", "D\thello.py"]
    # The pull request keeps the title of the run that opened it; its body is the latest's.
    assert (second.pull_request_number, len(forge.pulls), forge.pulls[0]["title"]) == (
        1,
        1,
        "Say v2 instead of v1",
    )
    assert "> Say v3" in forge.pulls[0]["body"]
    assert git("log", "-1", "--format=%s", second.commit, cwd=forge.bare) == "Say v3"


def test_an_archive_import_is_pushed_as_a_root_commit_then_the_run_on_top(
    db: Any, user: Any, project: Any, forge: Any, connection: Any
) -> None:
    imported = make_import_run(project, BASE_FILES, kind="archive")
    run = make_completed_run(project, CHANGED, base_run=imported)

    delivery = deliver_now(run, user)

    bare = forge.bare
    assert delivery.state == "delivered", delivery.error
    commits = branch_log(bare, delivery.branch)
    assert commits == [delivery.commit, delivery.root_commit]
    assert git("ls-tree", "-r", "--name-only", delivery.root_commit, cwd=bare).splitlines() == [
        "README.md",
        "app.py",
        "logo.png",
    ]
    assert git("show", f"{delivery.root_commit}:app.py", cwd=bare) == "print('v1')"
    assert git("diff", "--name-status", *commits[::-1], cwd=bare).splitlines() == [
        "M\tapp.py",
        "A\thello.py",
    ]


def test_a_binary_file_no_model_saw_is_kept(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any
) -> None:
    # The run's tree lacks logo.png (no model is shown a binary file) and README.md (the
    # run removed it): only README.md goes.
    tree = {"app.py": "print('v2')\n"}
    run = make_completed_run(project, tree, base_run=imported)

    delivery = deliver_now(run, user)

    listed = git("ls-tree", "-r", "--name-only", delivery.commit, cwd=forge.bare).splitlines()
    assert listed == ["app.py", "logo.png"]


def test_a_file_remote_takes_the_push_and_the_forge_the_pull_request(
    db: Any, user: Any, project: Any, forge: Any, imported: Any, tmp_path: Any
) -> None:
    mirror = make_bare(tmp_path / "mirror", "app.git", tmp_path / "work")
    forge_connection_put(
        project=project,
        kind=forge.kind,
        api_url=forge.api_url,
        repository=forge.repository,
        remote_url=f"file://{mirror}",
        token=TOKEN,
    )
    run = make_completed_run(project, CHANGED, base_run=imported)

    delivery = deliver_now(run, user)

    assert delivery.state == "delivered", delivery.error
    assert branch_log(mirror, delivery.branch) == [delivery.commit, forge.base]
    assert forge.server.requests == []  # no git request went to the forge's own server
    assert len(forge.pulls) == 1


def test_a_local_remote_is_refused_without_repository_allow_local(
    db: Any, user: Any, project: Any, forge: Any, connection: Any, imported: Any, settings: Any
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)
    settings.REPOSITORY_ALLOW_LOCAL = False

    delivery = deliver_now(run, user)

    assert (delivery.state, delivery.error_code, delivery.error) == (
        "failed",
        "outbound_refused",
        "The scheme 'http' is not allowed here (https, ssh).",
    )
    assert forge.server.requests == [] and forge.server.api_requests == []
    failed = Event.objects.get(run=run, type="delivery.failed")
    assert failed.payload == {"code": "outbound_refused", "detail": delivery.error}


def test_the_token_reaches_no_log_record_event_step_or_delivery_row(
    db: Any,
    user: Any,
    project: Any,
    forge: Any,
    connection: Any,
    imported: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = make_completed_run(project, CHANGED, base_run=imported)
    with caplog.at_level(logging.DEBUG):
        delivery = deliver_now(run, user)
        # A failing delivery logs git's stderr: it must not carry the token either.
        connection.api_url = forge.api_url + "/missing"
        connection.save()
        failed = deliver_now(run, user)

    assert (delivery.state, failed.state) == ("delivered", "failed")
    assert forge.git_basic_password() == {TOKEN}  # it was sent, to the forge only
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in str(record.__dict__)
    for event in Event.objects.filter(run__project=project):
        assert TOKEN not in str(event.payload)
    for step in Step.objects.filter(run__project=project):
        assert TOKEN not in str(step.input) and TOKEN not in str(step.output)
    row = RunDelivery.objects.filter(pk=delivery.pk).values()[0]
    assert TOKEN not in str(row)


def test_an_unreachable_remote_is_tried_again_then_fails_plainly(
    db: Any, user: Any, project: Any, forge: Any, imported: Any
) -> None:
    from pipeline.delivery.services import DeliveryRetry
    from tests.net import free_port

    forge_connection_put(
        project=project,
        kind=forge.kind,
        api_url=forge.api_url,
        repository=forge.repository,
        remote_url=f"http://127.0.0.1:{free_port()}/acme/app.git",
        token=TOKEN,
    )
    run = make_completed_run(project, CHANGED, base_run=imported)
    delivery = run_deliver(run=run, user=user)

    with pytest.raises(DeliveryRetry):
        delivery_execute(delivery_id=delivery.pk, attempt=delivery.attempt, last_try=False)
    delivery.refresh_from_db()
    assert delivery.state == "pushing"  # still in flight: the task tries again later

    delivery_execute(delivery_id=delivery.pk, attempt=delivery.attempt, last_try=True)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.error_code, delivery.error) == (
        "failed",
        "git_unreachable",
        "The remote could not be reached.",
    )
    assert forge.pulls == []


def test_a_delivery_whose_task_was_lost_is_queued_again(
    db: Any,
    user: Any,
    project: Any,
    connection: Any,
    imported: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from pipeline.delivery.services import deliveries_resend

    run = make_completed_run(project, CHANGED, base_run=imported)
    fresh_run = make_completed_run(project, CHANGED, base_run=imported)
    lost = run_deliver(run=run, user=user)
    under_way = run_deliver(run=fresh_run, user=user)
    long_ago = timezone.now() - timedelta(seconds=settings.REPOSITORY_DELIVERY_STALE_SECONDS + 1)
    RunDelivery.objects.filter(pk=lost.pk).update(state="pushing", updated_at=long_ago)

    with django_capture_on_commit_callbacks() as callbacks:
        resent = deliveries_resend()

    assert resent == [run.pk]
    assert len(callbacks) == 1
    lost.refresh_from_db()
    assert (lost.state, lost.attempt) == ("queued", 2)
    # The lost task, should it ever run, finds its attempt gone; the one under way is left.
    assert delivery_execute(delivery_id=lost.pk, attempt=1) is False
    assert RunDelivery.objects.get(pk=under_way.pk).attempt == 1
