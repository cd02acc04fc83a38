from shopping_list.core import parse_items, summarize
from shopping_list.storage import load_items, save_items


def test_parse_items_trims_and_drops_empty_items():
    assert parse_items(" milk, eggs\n\nbread ,") == ["milk", "eggs", "bread"]


def test_summarize_counts_case_insensitively_with_lower_case_keys():
    assert summarize(["Milk", "milk", "EGGS"]) == {"milk": 2, "eggs": 1}


def test_saved_items_load_back_in_order(tmp_path):
    path = str(tmp_path / "list.json")
    save_items(path, ["b", "a"])
    assert load_items(path) == ["b", "a"]


def test_a_missing_file_loads_as_an_empty_list(tmp_path):
    assert load_items(str(tmp_path / "nothing.json")) == []
