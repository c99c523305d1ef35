"""Units on the wire and the conversions into them.

Every value on MQTT is normalised to one unit per quantity (mmol/L, mmHg, bpm, %, °C, kg) and
the unit is named next to the value.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FIELD_UNITS",
    "MGDL_PER_MMOLL",
    "Unit",
    "glucose_kg_per_l_to_mmol_per_l",
    "glucose_limit",
    "glucose_mg_per_dl_to_mmol_per_l",
    "glucose_mol_per_l_to_mmol_per_l",
    "kpa_to_mmhg",
]

# Molar mass of glucose (C6H12O6) is 180.156 g/mol, so 1 mmol/L = 18.0156 mg/dL.
MGDL_PER_MMOLL = 18.0156
_MMHG_PER_KPA = 7.500615


class Unit(StrEnum):
    MMOL_PER_L = "mmol/L"
    MMHG = "mmHg"
    BPM = "bpm"
    PERCENT = "%"
    CELSIUS = "°C"
    KG = "kg"
    MS = "ms"
    KJ = "kJ"
    COUNT = "count"


# The unit of every field on the wire, by measurement (docs/wire-format.md). Rules and dashboards
# are checked against it, so a rule written in mg/dL or kPa is refused instead of never firing.
FIELD_UNITS: dict[str, dict[str, Unit]] = {
    "glucose": {"glucose": Unit.MMOL_PER_L},
    "blood_pressure": {
        "systolic": Unit.MMHG,
        "diastolic": Unit.MMHG,
        "mean_arterial": Unit.MMHG,
        "pulse": Unit.BPM,
    },
    "heart_rate": {"heart_rate": Unit.BPM, "energy_expended": Unit.KJ, "rr_interval": Unit.MS},
    "spo2": {"spo2": Unit.PERCENT, "pulse": Unit.BPM},
    "temperature": {"temperature": Unit.CELSIUS},
    "weight": {"weight": Unit.KG},
    "battery": {"battery": Unit.PERCENT},
}


def glucose_kg_per_l_to_mmol_per_l(value: float) -> float:
    """GLS 0x2A18 unit kg/L (flag bit 2 clear): kg/L -> mg/dL is x 1e5, then to mmol/L."""
    return value * 1e5 / MGDL_PER_MMOLL


def glucose_mol_per_l_to_mmol_per_l(value: float) -> float:
    """GLS 0x2A18 unit mol/L (flag bit 2 set)."""
    return value * 1e3


def glucose_mg_per_dl_to_mmol_per_l(value: float) -> float:
    return value / MGDL_PER_MMOLL


# A glucose limit is stated twice by the consensus (ADA; Battelino 2019): in mmol/L and in mg/dL
# (<3.0 and <54, <3.9 and <70, >10.0 and >180, >13.9 and >250), and the two differ a little (54
# mg/dL is 2.9974 mmol/L). A CGM reports whole mg/dL and the gateway stores it in mmol/L to 3
# decimals (54 -> 2.997). So a value is below a limit only when it is below it in both units, as
# the device showed it, and above only when above in both: 54 mg/dL and 3.0 mmol/L are not
# "below 3.0", 70 mg/dL and 3.9 mmol/L are not "below 3.9", 180 mg/dL and 10.0 mmol/L are not
# "above 10.0". Values are compared exactly, never rounded (2.98 is below 3.0, 10.01 above 10.0).
_EPS = 1e-9  # unit conversions leave float noise on a limit, never on a real value
_HALF_STEP = 0.0005  # half the gateway's storage step (3 decimals of mmol/L)


def glucose_limit(limit_mmol: float, *, below: bool) -> float:
    """The mmol/L value to compare with (``<`` it for ``below``, ``>`` it otherwise) that puts
    both device grids where the limit means them (see above): the limit in mg/dL is taken
    within half a storage step, so 54 mg/dL stored as 2.997 is 54 mg/dL."""
    mg_dl = round(limit_mmol * MGDL_PER_MMOLL) / MGDL_PER_MMOLL
    if below:
        return min(limit_mmol, mg_dl - _HALF_STEP) - _EPS
    return max(limit_mmol, mg_dl + _HALF_STEP) + _EPS


def kpa_to_mmhg(value: float) -> float:
    return value * _MMHG_PER_KPA
