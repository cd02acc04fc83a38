from word_frequency import core


def test_words_are_counted_case_insensitively():
    assert core.count_words("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}


def test_punctuation_separates_words_but_apostrophes_do_not():
    assert core.count_words("It's here; it's there!") == {"it's": 2, "here": 1, "there": 1}


def test_most_common_returns_words_with_counts():
    assert core.most_common("b a b c a b", 2) == [("b", 3), ("a", 2)]
