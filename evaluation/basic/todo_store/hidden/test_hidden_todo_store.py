from todo_store import storage


def test_saved_items_load_back(tmp_path):
    path = str(tmp_path / "todo.json")
    storage.save_items(path, ["write", "test"])
    assert storage.load_items(path) == ["write", "test"]


def test_a_missing_file_loads_as_an_empty_list(tmp_path):
    assert storage.load_items(str(tmp_path / "absent.json")) == []


def test_add_item_appends_and_returns_the_whole_list(tmp_path):
    path = str(tmp_path / "todo.json")
    storage.add_item(path, "one")
    assert storage.add_item(path, "two") == ["one", "two"]


def test_remove_item_removes_the_first_equal_item(tmp_path):
    path = str(tmp_path / "todo.json")
    storage.save_items(path, ["a", "b", "a"])
    assert (storage.remove_item(path, "a"), storage.remove_item(path, "z")) == (True, False)
    assert storage.load_items(path) == ["b", "a"]
