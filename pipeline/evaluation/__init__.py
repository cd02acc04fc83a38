"""Evaluation: a suite of prompts, each with hidden acceptance tests, run once per provider
chain; the hidden tests run in the sandbox against each run's tree.

``suite_load`` reads a suite from ``evaluation/``, ``evaluation_run`` carries it out through
the platform (real runs on the workers), ``evaluation_write`` stores the results as JSON and
markdown, ``chain_table`` and ``comparison_table`` print them. ``manage.py evaluate`` is the
front end.
"""

from .hidden import HIDDEN_DIR, HiddenResult, hidden_tests_run
from .report import (
    chain_table,
    comparison_table,
    evaluation_as_dict,
    evaluation_markdown,
    evaluation_write,
)
from .runner import CaseResult, ChainResult, Evaluation, chain_is_offline, evaluation_run
from .suites import Case, Suite, SuiteInvalid, suite_load

__all__ = [
    "HIDDEN_DIR",
    "Case",
    "CaseResult",
    "ChainResult",
    "Evaluation",
    "HiddenResult",
    "Suite",
    "SuiteInvalid",
    "chain_is_offline",
    "chain_table",
    "comparison_table",
    "evaluation_as_dict",
    "evaluation_markdown",
    "evaluation_run",
    "evaluation_write",
    "hidden_tests_run",
    "suite_load",
]
