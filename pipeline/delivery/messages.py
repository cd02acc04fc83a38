"""What a delivery says: the commit message, the pull request's title and body, the co-author.

The commit message is the prompt and the integrator's summary. The pull request's body holds
the summary, the tests the integration ran, the regressions (tests that passed in the
imported tree's baseline and fail now), the cost and a link to the run page. None of it holds
a credential: it is made from the run's own rows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from repositories.delivery import Person

from ..models import Run, Step
from ..regressions import run_regressions as run_regressions_of
from ..selectors import run_last_test_report

TITLE_CHARS = 72
MAX_BODY_CHARS = 60_000  # GitHub refuses a body past 65,536 characters


def run_summary(run: Run) -> str:
    """The integrator's summary of the run ("" when it wrote none)."""
    output = (
        Step.objects.filter(run=run, key="integrate:integrator", status=Step.Status.SUCCEEDED)
        .values_list("output", flat=True)
        .first()
    )
    return str((output or {}).get("summary") or "").strip() if isinstance(output, dict) else ""


def run_regressions(run: Run) -> list[str]:
    """The test ids that passed in the baseline and fail after the run (none, one hopes)."""
    return run_regressions_of(run=run)["regressions"]


def run_page_url(run: Run) -> str:
    """The run page, where people reach the platform (``PUBLIC_BASE_URL``)."""
    return f"{settings.PUBLIC_BASE_URL}/app/runs/{run.pk}"


def title_of(run: Run) -> str:
    """The commit's first line and the pull request's title: the prompt's first line."""
    first = next((line.strip() for line in run.prompt.splitlines() if line.strip()), "")
    first = first or f"Run {run.pk}"
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


def commit_message(run: Run) -> str:
    """The prompt and a summary (the co-author and delivery trailers are added on push)."""
    title = title_of(run)
    parts = [title]
    prompt = run.prompt.strip()
    if prompt != title:
        parts.append(prompt)
    summary = run_summary(run)
    if summary:
        parts.append(summary)
    parts.append(f"Run {run.pk}: {run_page_url(run)}")
    return "\n\n".join(parts)


def _tests_section(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["No test suite ran."]
    mode = report.get("mode") or ""
    line = str(report.get("summary") or "").strip() or ("passed" if report.get("passed") else "")
    where = "in the sandbox" if mode == "sandbox" else f"({mode})" if mode else ""
    lines = [f"Integration suite {where}: {line}".replace("  ", " ").strip()]
    for failure in list(report.get("failures") or [])[:20]:
        lines.append(f"- {str(failure)[:300]}")
    return lines


def pull_request_body(run: Run, *, comment_author: str = "") -> str:
    """The pull request's body: summary, tests run, regressions, cost, a link to the run."""
    lines = [run_summary(run) or "Changes made by aiflow's agents.", ""]
    if comment_author:
        lines += [f"This update answers a review comment by @{comment_author}.", ""]
    lines += ["### Prompt", "", *(f"> {line}" for line in run.prompt.strip().splitlines()), ""]
    lines += ["### Tests", "", *_tests_section(run_last_test_report(run=run)), ""]
    regressions = run_regressions(run)
    lines += ["### Regressions", ""]
    lines += [f"- `{test}`" for test in regressions] if regressions else ["None."]
    lines += [
        "",
        "### Cost",
        "",
        f"${run.cost_usd:.4f} ({run.tokens_in:,} tokens in, {run.tokens_out:,} out)",
        "",
        f"[Run {run.pk} on aiflow]({run_page_url(run)})",
    ]
    body = "\n".join(lines)
    return body if len(body) <= MAX_BODY_CHARS else body[:MAX_BODY_CHARS] + "\n\n(cut)"


def co_author_of(user: Any) -> Person | None:
    """The user who asked for the run, as a commit co-author (None without a usable email)."""
    email = str(getattr(user, "email", "") or "")
    if not email or "@" not in email or any(char in email for char in "<>\n\r\0 "):
        return None
    name = ""
    if hasattr(user, "get_full_name"):
        name = str(user.get_full_name() or "")
    name = " ".join(name.replace("<", "").replace(">", "").split()) or email.split("@")[0]
    return Person(name[:100], email)
