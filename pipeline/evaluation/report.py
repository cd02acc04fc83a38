"""An evaluation's results: tables for the terminal, JSON and markdown files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .forecast_check import decimal_free, forecast_figures, forecast_summary
from .runner import OFFLINE_LABEL, CaseResult, ChainResult, Evaluation

_CASE_HEADERS = ["case", "run", "status", "hidden passed", "wall s", "tokens", "cost $"]
_CHAIN_HEADERS = [
    "chain",
    "runs completed",
    "hidden passed",
    "executability",
    "mean wall s",
    "mean tokens",
    "mean cost $",
]


def _grid(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [headers, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    return "\n".join([cells(headers), cells(["---"] * len(headers)), *map(cells, rows)])


def _percent(figures: dict[str, Any]) -> str:
    return f"{figures['executability'] * 100:.1f}%"


_CHANGE_CASE_HEADERS = ["baseline tests broken", "lines changed"]
_CHANGE_CHAIN_HEADERS = ["baseline tests broken", "mean lines changed"]


def _change_cells(result: CaseResult) -> list[str]:
    broken = "-" if result.regressions is None else str(len(result.regressions))
    if result.regressions is not None and result.baseline_passed is not None:
        broken += f"/{result.baseline_passed}"
    changed = "-" if result.lines_changed is None else str(result.lines_changed)
    return [broken, changed]


def _case_headers(chain: ChainResult) -> list[str]:
    return _CASE_HEADERS + (_CHANGE_CASE_HEADERS if chain.changes else [])


def _case_rows(chain: ChainResult) -> list[list[str]]:
    rows = [_case_row(case) for case in chain.cases]
    if chain.changes:
        rows = [row + _change_cells(case) for row, case in zip(rows, chain.cases, strict=True)]
    return rows


def _chain_headers(evaluation: Evaluation) -> list[str]:
    changes = any(chain.changes for chain in evaluation.chains)
    return _CHAIN_HEADERS + (_CHANGE_CHAIN_HEADERS if changes else [])


def _chain_rows(evaluation: Evaluation) -> list[list[str]]:
    changes = any(chain.changes for chain in evaluation.chains)
    rows = []
    for chain in evaluation.chains:
        row = _chain_row(chain)
        if changes:
            figures = chain.change_figures()
            mean = figures["mean_lines_changed"]
            row += [
                f"{figures['baseline_tests_broken']}/{figures['baseline_tests']}",
                "-" if mean is None else f"{mean:.1f}",
            ]
        rows.append(row)
    return rows


def _case_row(result: CaseResult) -> list[str]:
    return [
        result.case,
        str(result.run_id or "-"),
        result.status + (f" ({result.error[:60]})" if result.error else ""),
        f"{result.hidden_passed}/{result.hidden_total}",
        "-" if result.wall_seconds is None else f"{result.wall_seconds:.1f}",
        str(result.tokens_in + result.tokens_out),
        f"{result.cost_usd:.6f}",
    ]


def _chain_row(chain: ChainResult) -> list[str]:
    figures = chain.figures()
    wall = figures["mean_wall_seconds"]
    return [
        chain.label + (" (offline test double)" if chain.offline else ""),
        f"{figures['completed']}/{figures['runs']}",
        f"{figures['hidden_passed']}/{figures['hidden_total']}",
        _percent(figures),
        "-" if wall is None else f"{wall:.1f}",
        f"{figures['mean_tokens']:.0f}",
        f"{figures['mean_cost_usd']:.6f}",
    ]


def chain_table(chain: ChainResult) -> str:
    """The cases of one chain and its totals, as text."""
    figures = chain.figures()
    title = f"Chain {chain.label}" + (f"\n  [{OFFLINE_LABEL}]" if chain.offline else "")
    summary = (
        f"runs completed {figures['completed']}/{figures['runs']}; hidden tests passed "
        f"{figures['hidden_passed']}/{figures['hidden_total']} (executability "
        f"{_percent(figures)}); per run: mean wall time "
        + ("-" if figures["mean_wall_seconds"] is None else f"{figures['mean_wall_seconds']:.1f}s")
        + f", tokens {figures['mean_tokens']:.0f}, cost ${figures['mean_cost_usd']:.6f}"
    )
    if chain.changes:
        figures = chain.change_figures()
        summary += (
            f"; baseline tests broken {figures['baseline_tests_broken']}/"
            f"{figures['baseline_tests']}, mean lines changed "
            + ("-" if figures["mean_lines_changed"] is None else f"{figures['mean_lines_changed']}")
        )
    return "\n".join(
        [
            title,
            _grid(_case_headers(chain), _case_rows(chain)),
            summary,
            forecast_summary(chain.cases),
        ]
    )


def comparison_table(evaluation: Evaluation) -> str:
    """One line per chain, as text."""
    return _grid(_chain_headers(evaluation), _chain_rows(evaluation))


def _case_dict(result: CaseResult) -> dict[str, Any]:
    return {
        "case": result.case,
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "wall_seconds": result.wall_seconds,
        "tokens_in": result.tokens_in,
        "tokens_out": result.tokens_out,
        "cost_usd": str(result.cost_usd),
        "hidden_passed": result.hidden_passed,
        "hidden_total": result.hidden_total,
        "hidden": result.hidden.as_dict() if result.hidden is not None else None,
        "import_run_id": result.import_run_id,
        "baseline_passed": result.baseline_passed,
        "regressions": result.regressions,
        "lines_changed": result.lines_changed,
        "forecast": decimal_free(result.forecast),
    }


def evaluation_as_dict(evaluation: Evaluation) -> dict[str, Any]:
    """Everything the evaluation found, JSON-serializable."""
    return {
        "suite": evaluation.suite.name,
        "suite_path": str(evaluation.suite.path),
        "started_at": evaluation.started_at,
        "finished_at": evaluation.finished_at,
        "chains": [
            {
                "chain": chain.label,
                "providers": chain.chain,
                "offline_test_double": chain.offline,
                "note": OFFLINE_LABEL if chain.offline else "",
                "figures": {
                    key: str(value) if isinstance(value, Decimal) else value
                    for key, value in chain.figures().items()
                },
                "change_figures": chain.change_figures() if chain.changes else None,
                "forecast": forecast_figures(chain.cases),
                "cases": [_case_dict(case) for case in chain.cases],
            }
            for chain in evaluation.chains
        ],
    }


def evaluation_markdown(evaluation: Evaluation) -> str:
    """The results as a markdown report: the comparison, then each chain and what failed."""
    lines = [
        f"# Evaluation of suite `{evaluation.suite.name}`",
        "",
        f"{len(evaluation.suite.cases)} cases, started {evaluation.started_at}, finished "
        f"{evaluation.finished_at}. Executability: hidden tests passed in the sandbox "
        "against each run's tree, out of all hidden tests (a run that did not complete "
        "counts all its hidden tests as failed).",
        "",
    ]
    if any(chain.offline for chain in evaluation.chains):
        lines += [f"> Chains marked offline: {OFFLINE_LABEL}.", ""]
    if any(chain.changes for chain in evaluation.chains):
        lines += [
            "Change cases import a repository first (its own tests are the baseline); "
            "baseline tests broken: tests that passed there and fail after the change; lines "
            "changed: added plus removed over the text files.",
            "",
        ]
    lines += [_markdown(_chain_headers(evaluation), _chain_rows(evaluation)), ""]
    for chain in evaluation.chains:
        lines += [f"## Chain `{chain.label}`", ""]
        if chain.offline:
            lines += [f"_{OFFLINE_LABEL}._", ""]
        lines += [_markdown(_case_headers(chain), _case_rows(chain)), ""]
        lines += [f"Cost {forecast_summary(chain.cases)}.", ""]
        failing = [
            (case.case, test)
            for case in chain.cases
            if case.hidden is not None
            for test in case.hidden.tests
            if test["outcome"] != "passed"
        ]
        if failing:
            lines += ["Hidden tests that did not pass:", ""]
            lines += [
                f"- `{case}`: `{test['nodeid']}` {test['outcome']}"
                + (f": {test['message'].splitlines()[0][:200]}" if test["message"] else "")
                for case, test in failing
            ]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def evaluation_write(evaluation: Evaluation, *, directory: Path) -> tuple[Path, Path]:
    """Write ``<suite>-<UTC time>.json`` and ``.md`` into ``directory``; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = f"{evaluation.suite.name}-{stamp}"
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(
        json.dumps(evaluation_as_dict(evaluation), indent=2, default=str) + "\n", encoding="utf-8"
    )
    md_path.write_text(evaluation_markdown(evaluation), encoding="utf-8")
    return json_path, md_path
