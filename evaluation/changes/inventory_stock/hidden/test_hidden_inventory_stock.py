import pytest
from inventory.stock import Inventory


def test_taking_more_than_in_stock_is_refused():
    stock = Inventory()
    stock.add("apple", 1)
    with pytest.raises(ValueError):
        stock.remove("apple", 2)


def test_a_refused_removal_leaves_the_stock_as_it_was():
    stock = Inventory()
    stock.add("apple", 1)
    with pytest.raises(ValueError):
        stock.remove("apple", 5)
    assert stock.count("apple") == 1
