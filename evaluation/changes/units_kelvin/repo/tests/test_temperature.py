import pytest
from units.temperature import c_to_f, f_to_c


def test_water_boils_at_212_fahrenheit():
    assert c_to_f(100) == 212


def test_a_round_trip_gives_the_same_temperature():
    assert f_to_c(c_to_f(37.5)) == pytest.approx(37.5)
