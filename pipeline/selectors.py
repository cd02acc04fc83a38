"""Reads of runs and steps, always filtered by the project's owner.

Also what a follow-up run starts from (``run_base_tree``); what ``GET
/projects/{id}/compare`` shows of each run is in ``pipeline.comparison``.
"""

from decimal import Decimal
from typing import Any

from django.db.models import Case, F, JSONField, OuterRef, Q, QuerySet, When
from django.db.models.expressions import RawSQL

from common.db import PrecompiledQuery, PrecompiledRows
from common.errors import NotFound
from common.row_sets import instance_of, json_row, json_rows, rows_of, when
from projects.artifacts import (
    artifact_list_for_run,
    artifact_read,
)
from projects.models import Artifact
from spending.selectors import spend_last_day_usd

from .models import BaselineTest, PlanTask, Run, RunImport, Step, TaskMessage

# How the stages label a tester that could not run the tests (pipeline.services.stages).
STATIC_REVIEW = "static review"


def run_list_for_project(*, project: Any) -> QuerySet[Run]:
    """The project's runs, newest first (the caller already checked the owner)."""
    return Run.objects.filter(project=project).order_by("-created_at", "-id")


def user_spent_last_day_usd(*, user_id: int) -> Decimal:
    """What the user's paid calls cost over the last 24 hours, in USD.

    Read from the spend ledger (``spending``), which outlives projects and runs: deleting
    either gives no dollar back.
    """
    return spend_last_day_usd(user_id=user_id)


# Every run endpoint looks its run up this way: its SQL is compiled once (common.db).
_run_of_owner = PrecompiledQuery(
    lambda run_id, owner_id: Run.objects.select_related("project").filter(
        id=run_id, project__owner_id=owner_id
    )
)


def _run_for_detail(run_id: int, owner_id: int) -> QuerySet[Run]:
    """What GET /runs/{id} shows, in one statement (``common.row_sets``): the run with its
    delivery (None when it has none) and, as JSON columns, its design steps and succeeded
    testers, its plan tasks, its messages to tasks, both trees of a follow-up, and the
    record of the import its tree descends from."""
    steps = Step.objects.filter(_DESIGN_OR_TESTER, run_id=OuterRef("id"))
    return (
        Run.objects.select_related("project", "delivery")
        .annotate(
            detail_steps=json_rows(steps, *_DESIGN_AND_TESTER_FIELDS, order_by=("id",)),
            detail_tasks=json_rows(
                PlanTask.objects.filter(run_id=OuterRef("id")),
                *_TASK_FIELDS,
                order_by=("layer", "id"),
            ),
            detail_messages=json_rows(
                TaskMessage.objects.filter(run_id=OuterRef("id")),
                *_MESSAGE_FIELDS,
                order_by=("id",),
            ),
            # Only a follow-up compares trees: its own and its base run's.
            detail_tree=_tree_of_follow_up(OuterRef("id")),
            detail_base_tree=_tree_of_follow_up(OuterRef("base_run_id")),
            detail_import=json_row(
                _IMPORT_RECORD_OF_OUTER_RUN,
                (Run.Kind.IMPORT.value, MAX_BASE_CHAIN - 1, Run.Kind.IMPORT.value),
            ),
        )
        .filter(id=run_id, project__owner_id=owner_id)
    )


_run_with_detail_of_owner = PrecompiledQuery(_run_for_detail)


def _tree_of_follow_up(run_id: OuterRef) -> Case:
    """The tree of run ``run_id`` as ``json_rows`` of (path, sha256), read only for a follow-up
    (NULL for a fresh run)."""
    tree = Artifact.objects.filter(run_id=run_id)
    return Case(
        When(base_run_id__isnull=True, then=None),
        default=json_rows(tree, "path", "sha256", order_by=("id",)),
        output_field=JSONField(),
    )


def _read_with(run: Run, column: str) -> list[Any] | None:
    """The rows of ``column`` read with the run (``_run_for_detail``), [] where it has none;
    None when the run was read without them."""
    if column not in run.__dict__:
        return None
    return rows_of(run.__dict__[column])


def run_get_for_user(*, user: Any, run_id: int, for_detail: bool = False) -> Run:
    """The user's run, or ``NotFound`` (another user's run does not exist for them).

    ``for_detail`` reads in the same statement all that ``GET /runs/{id}`` shows of it
    (``_run_for_detail``): the selectors below then send none of their own.
    """
    try:
        values = int(run_id), int(user.pk)
    except (TypeError, ValueError, AttributeError) as exc:  # no id, or no signed-in user
        raise NotFound("Run not found.") from exc
    query = _run_with_detail_of_owner if for_detail else _run_of_owner
    run = query.first(*values)
    if run is None:
        raise NotFound("Run not found.")
    return run


def step_list_for_run(*, run: Run) -> QuerySet[Step]:
    """The run's steps in the order they were created."""
    return Step.objects.filter(run=run).select_related("plan_task").order_by("id")


def step_get_for_user(*, user: Any, step_id: int) -> Step:
    """The user's step, or ``NotFound``."""
    try:
        return Step.objects.select_related("run").get(id=step_id, run__project__owner=user)
    except Step.DoesNotExist as exc:
        raise NotFound("Step not found.") from exc


# GET /runs/{id} reads these on every call: their SQL is compiled once (common.db).
_design_steps = PrecompiledRows(
    lambda run_id: Step.objects.filter(run_id=run_id, key__startswith="design:").values_list(
        "round", "role", "status", "output"
    )
)
_plan_tasks = PrecompiledRows(
    lambda run_id: (
        PlanTask.objects.filter(run_id=run_id)
        .order_by("layer", "id")
        .values_list("key", "title", "depends_on", "layer", "status", "files")
    )
)


# GET /runs/{id} reads both with the run (``_run_for_detail``), and anyone else in one
# statement: the design steps (round, role, status, output) and the succeeded testers (key,
# plan task, attempt, the output's regressions only).
_DESIGN_OR_TESTER = Q(key__startswith="design:") | Q(role="tester", status=Step.Status.SUCCEEDED)
_DESIGN_AND_TESTER_FIELDS = (
    "key",
    "round",
    "role",
    "status",
    Case(When(key__startswith="design:", then=F("output"))),
    "plan_task_id",
    "attempt",
    F("output__regressions"),
)
_design_and_tester_steps = PrecompiledRows(
    lambda run_id: (
        Step.objects.filter(_DESIGN_OR_TESTER, run_id=run_id)
        .order_by("id")
        .values_list(*_DESIGN_AND_TESTER_FIELDS)
    )
)

DesignRow = tuple[int, str, str, Any]
TesterRow = tuple[str, int | None, int, Any]


def run_design_and_tester_rows(*, run: Run) -> tuple[list[DesignRow], list[TesterRow]]:
    """In one statement, what ``run_rounds`` and ``run_regressions`` read: the run's design
    steps and its succeeded testers (pass each its part as ``rows``)."""
    design: list[DesignRow] = []
    testers: list[TesterRow] = []
    rows = _read_with(run, "detail_steps")
    if rows is None:
        rows = _design_and_tester_steps.all(int(run.pk))
    for (
        key,
        number,
        role,
        status,
        output,
        task_id,
        attempt,
        regressions,
    ) in rows:
        if key.startswith("design:"):
            design.append((number, role, status, output))
        else:
            testers.append((key, task_id, attempt, regressions))
    return design, testers


def run_rounds(*, run: Run, rows: list[DesignRow] | None = None) -> list[dict[str, Any]]:
    """Each design round: the architect's proposal, the planner's objections, the resolution.

    ``resolutions`` of round r answer the objections of round r - 1. ``rows``: the run's
    design steps as ``run_design_and_tester_rows`` read them (read here when not given).
    """
    rounds: dict[int, dict[str, Any]] = {}
    for number, role, status, stored in _design_steps.all(int(run.pk)) if rows is None else rows:
        entry = rounds.setdefault(
            number,
            {
                "round": number,
                "proposal": "",
                "resolutions": [],
                "objections": [],
                "approved": None,
                "status": "pending",
            },
        )
        output = stored or {}
        if role == "architect":
            entry["proposal"] = output.get("summary", "")
            entry["resolutions"] = output.get("resolutions", [])
        elif role == "planner":
            entry["objections"] = output.get("objections", [])
            entry["approved"] = output.get("approved") if stored is not None else None
        entry["status"] = status
    return [rounds[number] for number in sorted(rounds)]


_TASK_FIELDS = ("key", "title", "depends_on", "layer", "status", "files")


def run_tasks(*, run: Run) -> list[dict[str, Any]]:
    """The plan's tasks with their DAG layer and status."""
    rows = _read_with(run, "detail_tasks")
    if rows is None:
        rows = _plan_tasks.all(int(run.pk))
    return [dict(zip(_TASK_FIELDS, row, strict=True)) for row in rows]


# --- follow-ups: the base run and its tree ----------------------------------------------------


def run_latest_completed(*, project: Any) -> Run | None:
    """The project's newest completed run: a follow-up's default base (None when none)."""
    return (
        Run.objects.filter(project=project, status=Run.Status.COMPLETED)
        .order_by("-created_at", "-id")
        .first()
    )


def run_tree_texts(*, run: Run) -> dict[str, str]:
    """The run's artifact tree as text (path -> content); binary files are left out."""
    texts: dict[str, str] = {}
    for artifact in artifact_list_for_run(run=run):
        data = artifact_read(artifact=artifact)
        if b"\x00" in data:
            continue
        try:
            texts[artifact.path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def run_last_test_report(*, run: Run) -> dict[str, Any] | None:
    """The last integration suite of the run: ``{suite, mode, passed, summary, failures}``."""
    rows = Step.objects.filter(
        run=run, key__startswith="integrate:suite:", status=Step.Status.SUCCEEDED
    ).values_list("attempt", "output")
    if not rows:
        return None
    _, output = max(rows, key=lambda row: row[0])
    output = output or {}
    report = output.get("report") or {}
    mode = output.get("mode") or report.get("mode") or ""
    return {
        "suite": "integration",
        "mode": mode,
        "passed": output.get("passed"),
        "summary": report.get("summary")
        or (f"{STATIC_REVIEW}: the tests were not run" if mode == STATIC_REVIEW else ""),
        "failures": list(report.get("failures") or []),
    }


def run_base_tree(*, run: Run) -> dict[str, Any]:
    """What a follow-up of ``run`` starts from: its tree (text files) and last test report."""
    return {"files": run_tree_texts(run=run), "last_report": run_last_test_report(run=run)}


# Both trees of a follow-up (its own and its base's) in one statement.
_two_trees = PrecompiledRows(
    lambda run_id, base_id: Artifact.objects.filter(run_id__in=(run_id, base_id)).values_list(
        "run_id", "path", "sha256"
    )
)


def run_base_changes(*, run: Run) -> dict[str, Any] | None:
    """What a follow-up changed in its base run's tree: the paths added, removed and
    changed, how many stayed the same, and where the full diff is. None for a fresh run, or
    while the run has no files yet."""
    if run.base_run_id is None:
        return None
    own, base = _read_with(run, "detail_tree"), _read_with(run, "detail_base_tree")
    if own is None or base is None:
        trees: dict[int, dict[str, str]] = {run.pk: {}, run.base_run_id: {}}
        for run_id, path, sha256 in _two_trees.all(int(run.pk), int(run.base_run_id)):
            trees[run_id][path] = sha256
        new, old = trees[run.pk], trees[run.base_run_id]
    else:  # read with the run
        new, old = dict(own), dict(base)
    if not new:
        return None
    return {
        "base_run": run.base_run_id,
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(path for path in new.keys() & old.keys() if new[path] != old[path]),
        "unchanged": sum(1 for path in new.keys() & old.keys() if new[path] == old[path]),
        "diff_url": f"/projects/{run.project_id}/diff?from={run.base_run_id}&to={run.pk}",
    }


# --- imports: where a tree came from ---------------------------------------------------------

# How far a chain of follow-ups is walked back to find its import.
MAX_BASE_CHAIN = 1000


# The run's chain of base runs, walked down to its first import run: that run's id. The walk
# stops at the first import, at a chain that ends, or after MAX_BASE_CHAIN runs. ``{start}``
# is the run the walk starts from.
_IMPORT_RUN_WALK = """
WITH RECURSIVE chain(id, kind, base_run_id, depth) AS (
    SELECT start.id, start.kind, start.base_run_id, 0 FROM pipeline_run start WHERE {start}
    UNION ALL
    SELECT run.id, run.kind, run.base_run_id, chain.depth + 1
    FROM pipeline_run run JOIN chain ON run.id = chain.base_run_id
    WHERE chain.kind <> %s AND chain.depth < %s
)
SELECT id FROM chain WHERE kind = %s ORDER BY depth LIMIT 1
"""
# From the run whose id is the first parameter.
_IMPORT_RUN_OF_CHAIN = _IMPORT_RUN_WALK.format(start="start.id = %s")
# That import's record as JSON, from the run of the enclosing query (GET /runs/{id}).
_IMPORT_RECORD = "SELECT to_jsonb(record) FROM pipeline_runimport record WHERE record.run_id = ({})"
_IMPORT_RECORD_OF_OUTER_RUN = _IMPORT_RECORD.format(
    _IMPORT_RUN_WALK.format(start='start.id = "pipeline_run"."id"')
)
# That import run's RunImport, in the same statement; its SQL is compiled once (common.db).
_import_origin = PrecompiledQuery(
    lambda run_id: RunImport.objects.filter(
        run_id=RawSQL(  # noqa: S611 - a constant statement, the values bound as parameters
            _IMPORT_RUN_OF_CHAIN,
            (run_id, Run.Kind.IMPORT.value, MAX_BASE_CHAIN - 1, Run.Kind.IMPORT.value),
        )
    )
)


def run_import_origin(*, run: Run) -> RunImport | None:
    """The import a run's tree descends from: its own (an import run), its base run's, and
    so on down the chain of follow-ups; None when the chain starts from nothing.

    A delivery builds on it: ``commit`` (a git import) or the imported tree (an archive).
    """
    if run.pk is None:
        return None
    if "detail_import" in run.__dict__:  # read with the run (run_get_for_user, for_detail)
        return instance_of(RunImport, run.__dict__["detail_import"])
    return _import_origin.first(int(run.pk))


def run_import_summary(*, record: RunImport | None) -> dict[str, Any] | None:
    """What the API shows of an import: its source, what it held, its baseline's outcome."""
    if record is None:
        return None
    return {
        "run": record.run_id,
        "source": record.source,
        "url": record.url,
        "ref": record.ref,
        "commit": record.commit,
        "submodules": record.submodules,
        "archive_name": record.archive_name,
        "archive_bytes": record.archive_bytes,
        "files": record.files,
        "bytes": record.bytes,
        "binary": list(record.binary or []),
        "executable": list(record.executable or []),
        "symlinks": dict(record.symlinks or {}),
        "skipped": list(record.skipped or []),
        "imported_at": record.imported_at,
        "baseline": {
            "status": record.baseline_status,
            "command": record.baseline_command,
            "reason": record.baseline_reason,
            "counts": record.baseline_counts or {},
        },
    }


def project_import_current(*, project: Any) -> RunImport | None:
    """The import a project's work stands on: the one its latest completed run descends
    from, else its latest import (still running, or failed); None when it has none."""
    latest = run_latest_completed(project=project)
    if latest is not None:
        origin = run_import_origin(run=latest)
        if origin is not None:
            return origin
    return (
        RunImport.objects.filter(run__project=project)
        .select_related("run")
        .order_by("-run__created_at", "-run_id")
        .first()
    )


def baseline_tests(*, run_id: int) -> list[dict[str, str]]:
    """The baseline's tests of an import run: ``[{id, outcome}]`` by id."""
    rows = BaselineTest.objects.filter(run_id=run_id).order_by("test_id")
    return [
        {"id": test_id, "outcome": outcome}
        for test_id, outcome in rows.values_list("test_id", "outcome")
    ]


def baseline_passed_ids(*, run_id: int) -> set[str]:
    """The tests that passed in the baseline of import run ``run_id``."""
    return set(
        BaselineTest.objects.filter(run_id=run_id, outcome__in=("passed", "xpassed")).values_list(
            "test_id", flat=True
        )
    )


def project_baseline(*, project: Any) -> dict[str, Any]:
    """``GET /projects/{id}/baseline``: the current import's own tests before any change:
    ``{run, run_status, command, status, reason, counts, tests: [{id, outcome}]}``;
    ``NotFound`` (code ``no_import``) for a project that imported nothing."""
    record = project_import_current(project=project)
    if record is None:
        raise NotFound("This project has imported no repository yet.", code="no_import")
    run = Run.objects.only("id", "status").get(id=record.run_id)
    return {
        "run": record.run_id,
        "run_status": run.status,
        "command": record.baseline_command,
        "status": record.baseline_status,
        "reason": record.baseline_reason,
        "counts": record.baseline_counts or {},
        "tests": baseline_tests(run_id=record.run_id),
    }


def step_get_for_run(*, run: Run, step_id: int) -> Step:
    """One step of ``run`` (whose owner the caller checked), or ``NotFound``."""
    try:
        return Step.objects.select_related("plan_task").get(run=run, id=step_id)
    except Step.DoesNotExist as exc:
        raise NotFound("Step not found.") from exc


# --- steering: messages to tasks ------------------------------------------------------------


_MESSAGE_FIELDS = ("id", "plan_task__key", "text", "created_at", "step_id", "step__attempt")
_task_messages = PrecompiledRows(
    lambda run_id: (
        TaskMessage.objects.filter(run_id=run_id).order_by("id").values_list(*_MESSAGE_FIELDS)
    )
)


def task_messages_for_run(*, run: Run) -> list[dict[str, Any]]:
    """The run's messages to its tasks: task, text, when, and the coder attempt that read it
    (``attempt`` None: waiting for the task's next attempt)."""
    rows = _read_with(run, "detail_messages")
    if rows is None:
        rows = _task_messages.all(int(run.pk))
    else:  # read as JSON: the date-time as text
        rows = [
            (pk, task, text, when(at), step, attempt) for pk, task, text, at, step, attempt in rows
        ]
    return [
        {"id": pk, "task": task, "text": text, "at": at, "step": step, "attempt": attempt}
        for pk, task, text, at, step, attempt in rows
    ]
