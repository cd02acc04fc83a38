from calc.ops import add, mul


def test_add_adds():
    assert add(2, 3) == 5


def test_add_takes_negative_numbers():
    assert add(-2, 3) == 1


def test_mul_multiplies():
    assert mul(4, 5) == 20
