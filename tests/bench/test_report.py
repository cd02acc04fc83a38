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


def test_side_tables_are_written_under_the_main_table(tmp_path):
    from bench.figures_more import SERVER_COLUMNS, ServerRow
    from bench.report import SideTable, write

    result = write(
        tmp_path / "latest.json",
        title="t",
        rows=[Row("1", "hop p50", ours="12.0 ms")],
        details={},
        side_tables=[
            SideTable(
                "Other servers:", [ServerRow("granian", "GET /x", "1 / 2 ms")], SERVER_COLUMNS
            )
        ],
    )

    assert result["markdown"].split("\n\n")[2:] == [
        "Other servers:",
        "| server | request | p50 / p99 |\n|---|---|---|\n| granian | GET /x | 1 / 2 ms |\n",
    ]


def test_the_heading_says_how_fast_the_machine_ran_python_at_the_start_and_the_end(tmp_path):
    from bench.report import reference_loop_us, write

    speed = (reference_loop_us(loops=50, repeat=1), reference_loop_us(loops=50, repeat=1))
    result = write(tmp_path / "latest.json", title="t", rows=[], details={}, speed=speed)

    stored = result["machine"]["reference_loop_us"]
    assert speed[0] > 0 and speed[1] > 0
    assert stored == [round(v, 1) for v in speed]
    # The heading shows the stored figures: 49.46 is stored as 49.5 and shown as 50, not 49.
    assert (
        f"took {stored[0]:.0f} us of CPU at the start and {stored[1]:.0f} us at the end"
        in (result["markdown"].split("\n")[0])
    )
