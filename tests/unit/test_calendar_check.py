"""A year without holiday data is loud and fixable: the calendar names the festivals whose days off the
configuration must add, /readyz notes it, and `civicbus calendar check` fails saying which — a year listed in part
(the sample's 2027, 元旦 alone) is not taken as known."""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from civicbus.district import load_district
from civicbus.settings import DEFAULT_CONFIG_DIR
from civicbus.workcalendar import WorkingCalendar, calendar_notes, festivals
from ops.cli import app

DISTRICT = load_district(DEFAULT_CONFIG_DIR)


def _calendar(*holidays: date) -> WorkingCalendar:
    return WorkingCalendar(DISTRICT.deadlines.model_copy(update={"holidays": list(holidays)}), DISTRICT.timezone)


def test_the_festivals_of_a_year_are_where_the_state_council_sets_the_days_off():
    assert festivals(2027) == [
        (date(2027, 1, 1), "元旦"), (date(2027, 2, 6), "春节"), (date(2027, 4, 5), "清明节"), (date(2027, 5, 1), "劳动节"),
        (date(2027, 6, 9), "端午节"), (date(2027, 9, 15), "中秋节"), (date(2027, 10, 1), "国庆节")]


def test_a_year_listed_in_part_is_not_known_and_readyz_says_so():
    partial = _calendar(date(2027, 1, 1))
    assert [name for _, name in partial.missing_festivals(2027)] == ["春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"]
    assert not partial.is_working_day(date(2027, 1, 1))
    assert partial.is_working_day(date(2027, 2, 8)), "without data, Spring Festival's Monday counts as a working day"
    note = calendar_notes(partial, date(2026, 11, 30))["calendar"]
    assert "2027" in note and "deadlines.yaml" in note
    complete = _calendar(*(day for day, _ in festivals(2027)))
    assert complete.holidays_known(2027) and calendar_notes(complete, date(2026, 11, 30)) == {}


def test_the_cli_says_which_festivals_to_add_and_fails_until_they_are(monkeypatch):
    # In process, the CLI's logging set-up would point every later test's logs at this runner's closed stream.
    monkeypatch.setattr("civicbus.logs.configure_logging", lambda *args, **kwargs: None)
    result = CliRunner().invoke(app, ["calendar", "check", str(DEFAULT_CONFIG_DIR), "--year", "2026", "--year", "2027"])
    assert result.exit_code == 1
    assert "✓ 2026" in result.output and "✗ 2027" in result.output
    assert "2027-02-06  春节" in result.output and "2027-01-01" not in result.output, "元旦 is listed already"
