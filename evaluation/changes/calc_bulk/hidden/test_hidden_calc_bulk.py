from calc.ops import add_all


def test_each_pair_is_added_in_order():
    assert add_all([(1, 2), (3, 4), (-1, 1)]) == [3, 7, 0]


def test_no_pairs_give_an_empty_list():
    assert add_all([]) == []
