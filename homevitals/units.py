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


def kpa_to_mmhg(value: float) -> float:
    return value * _MMHG_PER_KPA
