"""Reads of delivery: where a run's tree came from, the trees a delivery compares, a run's
delivery as the API shows it.

A run's tree descends from its ``base_run`` chain: a follow-up changes its base's tree, the
first run after an import changes the imported tree. ``run_import_source`` walks that chain
to the import; ``delivery_before_tree`` to the nearest run the branch already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from common.content import is_binary
from common.db import PrecompiledQuery
from projects.artifacts import artifact_list_for_run, artifact_read

from ..models import Run, RunDelivery, RunImport

# A chain longer than this is cut (a cycle cannot happen through ``base_run``, which only
# points at older runs, but a bound keeps a read bounded whatever the rows say).
MAX_CHAIN = 500


@dataclass(frozen=True)
class ImportSource:
    """The import a run's tree descends from: the import run, and where it fetched from.

    ``kind`` is ``git`` (``url``, ``ref``, and ``commit``: the commit a delivery builds on)
    or ``archive`` (no history: a delivery first pushes the imported tree as a root commit).
    """

    run: Run
    kind: str
    url: str = ""
    ref: str = ""
    commit: str = ""


def _recorded_sources(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """What each import run among ``runs`` recorded about its source (its ``RunImport``:
    ``{"kind": "git" | "archive", "url", "ref", "commit"}``), by run id."""
    candidates = [run.pk for run in runs if run.kind == Run.Kind.IMPORT]
    if not candidates:
        return {}
    return {
        row.run_id: {"kind": row.source, "url": row.url, "ref": row.ref, "commit": row.commit}
        for row in RunImport.objects.filter(run_id__in=candidates)
    }


# The base chain in one statement: the run, its base, that one's base, ...
_CHAIN = """
WITH RECURSIVE chain(id, base_run_id, depth) AS (
    SELECT id, base_run_id, 0 FROM pipeline_run WHERE id = %(run)s
    UNION ALL
    SELECT run.id, run.base_run_id, chain.depth + 1
    FROM pipeline_run run JOIN chain ON run.id = chain.base_run_id
    WHERE chain.depth < %(limit)s
)
SELECT id FROM chain ORDER BY depth
"""


def run_chain(run: Run) -> list[Run]:
    """``run``, its base run, that one's base, ... (oldest last), at most ``MAX_CHAIN``."""
    with connection.cursor() as cursor:
        cursor.execute(_CHAIN, {"run": run.pk, "limit": MAX_CHAIN - 1})
        ids = [row[0] for row in cursor.fetchall()]
    found = Run.objects.in_bulk(ids[1:])
    return [run, *(found[pk] for pk in ids[1:] if pk in found)]


def run_import_source(run: Run) -> ImportSource | None:
    """The import ``run``'s tree descends from (``run`` itself when it is the import), or
    None when its chain starts from nothing."""
    chain = run_chain(run)
    sources = _recorded_sources(chain)
    for ancestor in chain:
        source = sources.get(ancestor.pk)
        if source is not None:
            kind = "git" if source.get("kind") == "git" else "archive"
            return ImportSource(
                run=ancestor,
                kind=kind,
                url=str(source.get("url") or ""),
                ref=str(source.get("ref") or ""),
                commit=str(source.get("commit") or "") if kind == "git" else "",
            )
    return None


def run_tree_bytes(*, run: Run) -> dict[str, bytes]:
    """The run's tree: path -> content (binary files included)."""
    return {
        artifact.path: artifact_read(artifact=artifact)
        for artifact in artifact_list_for_run(run=run)
    }


@dataclass(frozen=True)
class BeforeTree:
    """The tree a delivery of a run is a change to, and what it is.

    ``run`` is the run whose tree it is (None: nothing); ``on_branch`` says the branch
    already holds that run's delivery (else the tree is the import's, or nothing).
    """

    files: dict[str, bytes]
    run: Run | None
    on_branch: bool


def delivery_before_tree(*, run: Run, branch: str) -> BeforeTree:
    """What the delivery of ``run`` to ``branch`` changes: the tree of the nearest run of its
    base chain that was delivered to ``branch``, else of the import it descends from, else
    nothing (a run from scratch).

    A follow-up delivered to the branch of its base thus adds exactly its own change on top
    of what the branch holds; the first delivery after an import adds everything since it.
    """
    chain = run_chain(run)[1:]
    delivered = set(
        RunDelivery.objects.filter(run_id__in=[ancestor.pk for ancestor in chain], branch=branch)
        .exclude(commit="")
        .values_list("run_id", flat=True)
    )
    imports = _recorded_sources(chain)
    for ancestor in chain:
        if ancestor.pk in delivered:
            return BeforeTree(run_tree_bytes(run=ancestor), ancestor, on_branch=True)
        if ancestor.pk in imports:
            return BeforeTree(run_tree_bytes(run=ancestor), ancestor, on_branch=False)
    return BeforeTree({}, None, on_branch=False)


def tree_changes(before: dict[str, bytes], after: dict[str, bytes]) -> tuple[dict, frozenset]:
    """Files of ``after`` that are new or differ from ``before``, and the paths ``after``
    dropped. A binary file of ``before`` is never dropped: no model is shown one, so a run
    that lacks it did not delete it."""
    changed = {path: data for path, data in after.items() if before.get(path) != data}
    deleted = frozenset(
        path for path, data in before.items() if path not in after and not is_binary(data)
    )
    return changed, deleted


# Read on every GET /runs/{id}: its SQL is compiled once (common.db).
_delivery_of_run = PrecompiledQuery(lambda run_id: RunDelivery.objects.filter(run_id=run_id))


def run_delivery_of(run: Run) -> RunDelivery | None:
    """The run's delivery row, or None (read with the run when it was, see
    ``run_get_for_user(for_detail=True)``)."""
    related = Run.delivery.related  # type: ignore[attr-defined]
    if related.is_cached(run):
        return related.get_cached_value(run)  # type: ignore[return-value]
    return _delivery_of_run.first(int(run.pk))


def run_delivery_view(run: Run) -> dict[str, Any] | None:
    """``delivery`` of ``GET /runs/{id}``: branch, commit, pull request and state; None when
    the run was never delivered nor asked to be."""
    delivery = run_delivery_of(run)
    if delivery is None:
        return None
    return delivery_view(delivery)


def delivery_view(delivery: RunDelivery) -> dict[str, Any]:
    """One delivery as the API and the pages show it."""
    return {
        "branch": delivery.branch,
        "commit": delivery.commit or None,
        "pull_request": delivery.pull_request,
        "pull_request_url": delivery.pull_request_url or None,
        "pull_request_number": delivery.pull_request_number,
        "pull_request_state": delivery.pull_request_state or None,
        "state": delivery.state,
        "trigger": delivery.trigger,
        "error": delivery.error,
        "error_code": delivery.error_code,
        "requested_at": delivery.requested_at,
        "delivered_at": delivery.delivered_at,
    }


def delivery_for_pull_request(
    *, project_id: int, number: int, branch: str | None = None
) -> RunDelivery | None:
    """The latest delivery of the project that opened or updated pull request ``number``
    (on ``branch`` when the forge named it): the run a review comment on it follows up."""
    found = RunDelivery.objects.filter(
        run__project_id=project_id,
        pull_request_number=number,
        state=RunDelivery.State.DELIVERED,
        run__status=Run.Status.COMPLETED,
    )
    if branch:
        found = found.filter(branch=branch)
    return found.select_related("run").order_by("-delivered_at", "-id").first()


def delivery_opening_run(*, project_id: int, branch: str) -> Run | None:
    """The run whose delivery opened the pull request from ``branch`` (the first one of the
    project delivered there with a pull request): its prompt stays the pull request's title
    while follow-ups add commits."""
    first = (
        RunDelivery.objects.filter(
            run__project_id=project_id, branch=branch, pull_request_number__isnull=False
        )
        .exclude(delivered_at=None)
        .select_related("run")
        .order_by("delivered_at", "id")
        .first()
    )
    return first.run if first is not None else None
