from csv_totals.core import column_total, parse_rows


def test_rows_are_parsed_with_trimmed_cells_and_no_blank_lines():
    assert parse_rows("name, price\n\napple, 1.5\n") == [["name", "price"], ["apple", "1.5"]]


def test_quoted_cells_may_hold_commas():
    assert parse_rows('a,"b, c"\n') == [["a", "b, c"]]


def test_column_total_skips_the_header_and_counts_empty_cells_as_zero():
    rows = [["name", "price"], ["apple", "1.5"], ["pear", ""], ["fig", "2"]]
    assert column_total(rows, 1) == 3.5
