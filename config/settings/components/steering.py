"""Settings of steering a run (plan edits, task messages) and of the cost forecast."""

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# Tasks a plan may hold after its owner edits it at the approval gate (PATCH /runs/{id}/plan).
PIPELINE_MAX_PLAN_TASKS = env.int("PIPELINE_MAX_PLAN_TASKS", default=50)
# Longest message a person may send to a task's next coder attempt, in characters.
PIPELINE_TASK_MESSAGE_MAX_CHARS = env.int("PIPELINE_TASK_MESSAGE_MAX_CHARS", default=4000)
# Messages one task may be sent over a run (each one goes into a coder's prompt).
PIPELINE_TASK_MESSAGES_MAX = env.int("PIPELINE_TASK_MESSAGES_MAX", default=20)
# Finished runs a forecast needs before it trusts a history (this user's, then everyone's);
# with fewer it falls back to the next one, and last to the stated default.
FORECAST_MIN_HISTORY_RUNS = env.int("FORECAST_MIN_HISTORY_RUNS", default=3)
# The most recent completed runs a forecast reads from a history.
FORECAST_HISTORY_RUNS = env.int("FORECAST_HISTORY_RUNS", default=50)

for _name in (
    "PIPELINE_MAX_PLAN_TASKS",
    "PIPELINE_TASK_MESSAGE_MAX_CHARS",
    "PIPELINE_TASK_MESSAGES_MAX",
    "FORECAST_MIN_HISTORY_RUNS",
    "FORECAST_HISTORY_RUNS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
if FORECAST_HISTORY_RUNS < FORECAST_MIN_HISTORY_RUNS:
    raise ImproperlyConfigured("FORECAST_HISTORY_RUNS must be at least FORECAST_MIN_HISTORY_RUNS")
