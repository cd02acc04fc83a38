from inventory.stock import Inventory


def test_added_items_are_counted():
    stock = Inventory()
    stock.add("apple", 3)
    assert stock.count("apple") == 3


def test_removed_items_leave_the_rest():
    stock = Inventory()
    stock.add("apple", 3)
    stock.remove("apple", 2)
    assert stock.count("apple") == 1
