from report.table import parse_csv, render

TEXT = "item,price\npen,1.5\nbook,12\n"


def test_rows_are_read_by_header():
    assert parse_csv(TEXT) == [{"item": "pen", "price": "1.5"}, {"item": "book", "price": "12"}]


def test_rows_render_one_per_line():
    assert render(parse_csv(TEXT)) == "pen | 1.5\nbook | 12"
