from textkit.strings import slugify, word_count


def test_slugify_joins_lower_case_words():
    assert slugify("Hello, World!") == "hello-world"


def test_word_count_counts_words():
    assert word_count("one two  three") == 3
