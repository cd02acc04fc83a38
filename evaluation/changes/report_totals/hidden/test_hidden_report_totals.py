import pytest
from report.table import column_total, parse_csv

TEXT = "item,price\npen,1.5\nbook,12\n"


def test_a_numeric_column_is_summed():
    assert column_total(parse_csv(TEXT), "price") == pytest.approx(13.5)


def test_a_missing_column_is_refused():
    with pytest.raises(KeyError):
        column_total(parse_csv(TEXT), "weight")
