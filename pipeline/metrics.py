"""Pipeline figures for ``/metrics``, read from the database at scrape time.

Runs and steps are counted from their rows rather than from in-process counters, so the
figures are right however many workers on however many machines did the work. What was
spent is also counted from the spend ledger (``aiflow_spend_*``), which deleting a project or
a run never lowers, as a counter must not be (the ``aiflow_step_*`` figures go with the
steps they were summed from).
"""

from collections.abc import Iterator

from django.db.models import Count, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from spending.models import SpendEntry

from .models import Run, Step


class PipelineCollector(Collector):
    """Runs by status, steps by role and status, and the tokens and dollars they used."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        runs = GaugeMetricFamily("aiflow_runs", "Runs by status", labels=["status"])
        for by_status in Run.objects.values("status").annotate(n=Count("id")).order_by():
            runs.add_metric([by_status["status"]], by_status["n"])
        steps = GaugeMetricFamily(
            "aiflow_steps", "Steps by role and status", labels=["role", "status"]
        )
        for by_role in Step.objects.values("role", "status").annotate(n=Count("id")).order_by():
            steps.add_metric([by_role["role"], by_role["status"]], by_role["n"])
        usage = Step.objects.values("provider", "model").annotate(
            tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost_usd")
        )
        tokens = CounterMetricFamily(
            "aiflow_step_tokens",
            "Tokens used by pipeline steps",
            labels=["provider", "model", "direction"],
        )
        cost = CounterMetricFamily(
            "aiflow_step_cost_usd", "USD spent by pipeline steps", labels=["provider", "model"]
        )
        for row in usage.order_by():
            if not row["provider"]:
                continue
            labels = [row["provider"], row["model"]]
            tokens.add_metric([*labels, "in"], row["tokens_in"] or 0)
            tokens.add_metric([*labels, "out"], row["tokens_out"] or 0)
            cost.add_metric(labels, float(row["cost"] or 0))
        yield from (runs, steps, tokens, cost, *self._spend())

    @staticmethod
    def _spend() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        """USD and tokens of every paid call, by provider and model, from the spend ledger."""
        usd = CounterMetricFamily(
            "aiflow_spend_usd",
            "USD spent on paid model calls (the spend ledger: outlives projects and runs)",
            labels=["provider", "model"],
        )
        tokens = CounterMetricFamily(
            "aiflow_spend_tokens",
            "Tokens of paid model calls (the spend ledger)",
            labels=["provider", "model", "direction"],
        )
        rows = SpendEntry.objects.values("provider", "model").annotate(
            cost=Sum("cost_usd"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")
        )
        for row in rows.order_by():
            labels = [row["provider"], row["model"]]
            usd.add_metric(labels, float(row["cost"] or 0))
            tokens.add_metric([*labels, "in"], row["tokens_in"] or 0)
            tokens.add_metric([*labels, "out"], row["tokens_out"] or 0)
        return usd, tokens
