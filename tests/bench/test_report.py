"""The table the benchmarks print."""

from bench.report import Row, table


def test_the_table_leaves_out_columns_no_row_fills() -> None:
    rows = [Row("1", "hop p50", ours="12.0 ms", target="< 15 ms"), Row("2", "a|b", ours="x")]

    assert table(rows).splitlines() == [
        "| # | figure | aiflow | target |",
        "|---|---|---|---|",
        "| 1 | hop p50 | 12.0 ms | < 15 ms |",
        "| 2 | a/b | x |  |",
    ]
