from slug_maker.core import slugify


def test_a_title_becomes_a_lower_case_hyphenated_slug():
    assert slugify("Hello, World!") == "hello-world"


def test_runs_of_separators_collapse_and_ends_are_trimmed():
    assert slugify("  --Django  &  Celery--  ") == "django-celery"
