from tag_counter import core


def test_tags_are_split_on_commas_and_newlines():
    assert core.parse_items("python,django\ncelery") == ["python", "django", "celery"]


def test_tags_are_counted_case_insensitively():
    assert core.summarize(["Python", "python", "Django"]) == {"python": 2, "django": 1}


def test_top_items_ranks_by_count_then_alphabetically():
    assert core.top_items({"b": 2, "a": 2, "c": 5, "d": 1}, 3) == ["c", "a", "b"]
