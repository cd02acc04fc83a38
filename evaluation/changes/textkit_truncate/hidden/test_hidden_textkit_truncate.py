import pytest
from textkit.strings import truncate


def test_a_long_text_is_cut_with_an_ellipsis():
    assert truncate("abcdefgh", 5) == "abcd…"


def test_a_short_text_is_unchanged():
    assert truncate("abc", 5) == "abc"


def test_a_width_below_one_is_refused():
    with pytest.raises(ValueError):
        truncate("abc", 0)
