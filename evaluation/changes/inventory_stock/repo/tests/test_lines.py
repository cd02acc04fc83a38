from inventory.lines import parse_line


def test_a_line_gives_its_item_and_count():
    assert parse_line(" pears : 4") == ("pears", 4)
