"""The harness's own logic: wrk's output, the platform's step dependencies, the table."""

from bench.platform_trace import step_deps
from bench.report import Row, table
from bench.stack import procfile, tree_cpu_seconds
from bench.wrk import parse

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8001/projects
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.20ms   12.01ms 210.33ms   80.12%
    Req/Sec   610.01     80.22   800.00     70.00%
  Latency Distribution
     50%   38.50ms
     75%   45.10ms
     90%  600.00us
     99%    1.20s
  12180 requests in 10.01s, 4.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1216.78
Transfer/sec:    460.12KB
"""


def test_wrk_output_gives_percentiles_in_ms_rate_and_failures() -> None:
    assert parse(WRK_OUTPUT) == {
        "p50": 38.5,
        "p75": 45.1,
        "p90": 0.6,
        "p99": 1200.0,
        "rps": 1216.78,
        "requests": 12180,
        "non_2xx": 7,
        "socket_errors": 5,
    }


def test_steps_wait_for_what_the_pipeline_makes_them_wait_for() -> None:
    keys = [
        "design:1:architect",
        "design:1:planner",
        "design:2:architect",
        "design:2:planner",
        "orchestrate",
        "task:core:coder:1",
        "task:storage:coder:1",
        "task:core:tester:1",
        "task:storage:tester:1",
        "task:core:coder:2",
        "task:core:tester:2",
        "task:cli:coder:1",
        "task:cli:tester:1",
        "integrate:suite:1",
        "integrate:integrator",
    ]
    depends_on = {"core": [], "storage": [], "cli": ["core", "storage"]}

    deps = step_deps(keys, depends_on)

    assert deps == {
        "design:1:architect": (),
        "design:1:planner": ("design:1:architect",),
        "design:2:architect": ("design:1:planner",),
        "design:2:planner": ("design:2:architect",),
        "orchestrate": ("design:2:planner",),
        "task:core:coder:1": ("orchestrate",),
        "task:storage:coder:1": ("orchestrate",),
        "task:core:tester:1": ("task:core:coder:1",),
        "task:storage:tester:1": ("task:storage:coder:1",),
        "task:core:coder:2": ("task:core:tester:1",),
        "task:core:tester:2": ("task:core:coder:2",),
        "task:cli:coder:1": ("task:core:tester:2", "task:storage:tester:1"),
        "task:cli:tester:1": ("task:cli:coder:1",),
        "integrate:suite:1": (
            "task:cli:tester:1",
            "task:core:tester:2",
            "task:storage:tester:1",
        ),
        "integrate:integrator": ("integrate:suite:1",),
    }


def test_the_table_leaves_out_columns_no_row_fills() -> None:
    rows = [Row("1", "hop p50", ours="12.0 ms", target="< 15 ms"), Row("2", "a|b", ours="x")]

    assert table(rows).splitlines() == [
        "| # | figure | aiflow | target |",
        "|---|---|---|---|",
        "| 1 | hop p50 | 12.0 ms | < 15 ms |",
        "| 2 | a/b | x |  |",
    ]


def test_the_procfile_names_every_process_the_stack_starts() -> None:
    assert {"web", "worker_llm", "worker_sandbox", "beat"} <= set(procfile())


def test_cpu_seconds_count_children_that_already_exited() -> None:
    import os
    import subprocess
    import sys

    before = tree_cpu_seconds(os.getpid())
    subprocess.run(
        [sys.executable, "-c", "x = 0\nfor i in range(3_000_000): x += i"],
        check=True,
    )

    assert tree_cpu_seconds(os.getpid()) - before >= 0.05
