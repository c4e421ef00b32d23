"""UCUM from the essence: validation, commensurability, canonical form."""

from __future__ import annotations

import pytest

from gateway.terminology.ucum import UcumError, ucum_canonical, ucum_comparable, ucum_convert, ucum_validate


@pytest.mark.parametrize("unit", ["mg/dL", "mmol/L", "mm[Hg]", "10*3/uL", "{beats}/min", "Cel", "[degF]",
                                  "kg/m2", "[IU]/L", "%", "/min", "g/(8.h){shift}", "mL/min/{1.73_m2}", "[pH]"])
def test_valid(unit: str) -> None:
    assert ucum_validate(unit) is True


@pytest.mark.parametrize("unit", ["", "foo", "mg/", "kg.", "(mg", "mg{x", "m^2", "Cel2", "mmHg"])
def test_invalid(unit: str) -> None:
    assert ucum_validate(unit) is False


def test_comparable_and_canonical() -> None:
    assert ucum_comparable("mg/dL", "g/L")
    assert ucum_comparable("Cel", "K")  # special units: through their function's unit
    assert not ucum_comparable("[IU]/L", "/L")  # arbitrary units only with themselves
    assert not ucum_comparable("mg/dL", "mmol/L")
    assert ucum_canonical("mg/dL") == (10.0, "g.m-3")
    assert ucum_canonical("Cel") is None
    assert ucum_convert(1, "mg/dL", "g/L") == 0.01
    assert abs(ucum_convert(1, "[lb_av]", "kg") - 0.45359237) < 1e-12
    with pytest.raises(UcumError):
        ucum_convert(1, "mg", "m")
