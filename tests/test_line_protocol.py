"""The line protocol ingest writes: the fast path for readings says exactly what the general
path (``to_line(to_point(r))``) says, for any field names and strings the wire lets through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homevitals.ingest import points
from homevitals.ingest.errors import StoreError
from homevitals.ingest.points import to_line, to_lines, to_point
from homevitals.vocab.readings import Event, EventKind, FieldValue, Measurement, Reading
from homevitals.vocab.units import Unit

T = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)
_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_FIELD_NAME = _TEXT.filter(
    lambda s: s and "\n" not in s and "\r" not in s and s not in points.RESERVED_FIELDS
)
_VALUE = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    names = draw(st.lists(_FIELD_NAME, min_size=1, max_size=4, unique=True))
    return Reading(
        reading_id=draw(_ID),
        home=draw(_ID),
        patient=draw(_ID),
        device=draw(_ID),
        measurement=draw(st.sampled_from(list(Measurement))),
        fields={n: FieldValue(draw(_VALUE), draw(st.sampled_from(list(Unit)))) for n in names},
        time=T + timedelta(microseconds=draw(st.integers(-(10**15), 10**15))),
        received_at=T,
        characteristic=draw(_TEXT),
        raw=draw(st.binary(max_size=8)).hex(),
        flags=tuple(draw(st.lists(_TEXT, max_size=3))),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=5))
def test_fast_reading_lines_equal_the_general_path(batch: list[Reading]) -> None:
    expected = "\n".join(to_line(to_point(r)) for r in batch)
    assert to_lines(batch) == expected
    assert to_lines(batch) == expected  # and again, from the memories


def test_awkward_names_are_escaped_in_the_fast_path() -> None:
    r = Reading("r1", "home-1", "ana", "bp-1", Measurement.BLOOD_PRESSURE,
                {"sys tolic,=x": FieldValue(182, Unit.MMHG)}, T, T,
                characteristic='say "hi" \\', flags=("a,b", 'c"d'))
    assert to_lines([r]) == (
        "blood_pressure,device=bp-1,home=home-1,patient=ana"
        r' sys\ tolic\,\=x=182.0,reading_id="r1",raw="",characteristic="say \"hi\" \\",'
        r'flags="a,b,c\"d"'
        f" {1795227000000000000 + points.id_offset_ns('r1')}"  # 2026-11-21T02:10:00Z, shifted
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("reading_id", "field name(s) ['reading_id'] are reserved by the store schema"),
        ("bad\nname", "contains a line break"),
    ],
)
def test_refused_field_names_fail_the_same_way(name: str, message: str) -> None:
    r = Reading("r1", "home-1", "ana", "g-1", Measurement.GLUCOSE,
                {name: FieldValue(3.1, Unit.MMOL_PER_L)}, T, T)
    with pytest.raises(StoreError) as fast:
        to_lines([r])
    with pytest.raises(StoreError) as general:
        to_line(to_point(r))
    assert message in str(fast.value)
    assert (str(fast.value), fast.value.retryable) == (str(general.value), False)


def test_memories_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(points, "_MEMO_MAX", 10)
    monkeypatch.setattr(points, "_SERIES", {})
    for i in range(25):
        r = Reading(f"r{i}", f"home-{i}", "ana", "g-1", Measurement.GLUCOSE,
                    {"glucose": FieldValue(5.5, Unit.MMOL_PER_L)}, T, T)
        assert to_lines([r]) == to_line(to_point(r))
        assert len(points._SERIES) <= 10


def test_other_items_take_the_general_path() -> None:
    e = Event("e1", "home-1", "ana", "btn-1", EventKind.CALL_BUTTON, T, T, detail="press")
    assert to_lines([e]) == to_line(to_point(e))


_MICROS = st.integers(-(10**15), 10**15).map(lambda us: us * 1000)  # every datetime is whole us


@settings(max_examples=400, deadline=None)
@given(_MICROS, _ID)
def test_a_point_stays_in_its_items_second_and_reads_back_exactly(t_ns: int, rid: str) -> None:
    stored = points.point_time_ns(t_ns, rid)
    assert stored // 10**9 == t_ns // 10**9
    assert points.item_time_ns(stored, rid) == t_ns
    # influxdb-client's datetimes drop the last three digits: still exact.
    assert points.item_time_ns(stored // 1000 * 1000, rid) == t_ns
    r = Reading(rid, "h", "p", "d", Measurement.GLUCOSE,
                {"glucose": FieldValue(5.0, Unit.MMOL_PER_L)}, points.from_ns(t_ns), T)
    assert to_lines([r]).endswith(f" {stored}")
