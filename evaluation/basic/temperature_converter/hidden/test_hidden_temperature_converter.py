import math

from temperature_converter.core import celsius_to_fahrenheit, fahrenheit_to_celsius


def test_water_boils_at_212_fahrenheit():
    assert celsius_to_fahrenheit(100) == 212


def test_conversions_are_inverse():
    assert math.isclose(fahrenheit_to_celsius(celsius_to_fahrenheit(-40.5)), -40.5)
