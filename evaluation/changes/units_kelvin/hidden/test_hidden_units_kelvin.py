import pytest
from units.temperature import c_to_k, k_to_c


def test_zero_celsius_is_273_15_kelvin():
    assert c_to_k(0) == pytest.approx(273.15)


def test_kelvin_back_to_celsius():
    assert k_to_c(373.15) == pytest.approx(100)


def test_below_absolute_zero_is_refused():
    with pytest.raises(ValueError):
        c_to_k(-300)
