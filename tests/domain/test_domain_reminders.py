"""Reminder timing: quiet hours, reminders moved earlier, staleness, backoff (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from visio.domain import reminders as r

PARIS = "Europe/Paris"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Paris


def _plan(start: datetime, now: datetime = NOW, **kw: bool) -> dict[tuple[str, str], datetime]:
    flags = {"phone": True, "email": True, "staff": True, **kw}
    return {(p.kind.value, p.channel.value): p.due
            for p in r.plan_booked(now=now, start=start, zone=PARIS, **flags)}


def test_plan_has_confirmation_reminders_and_invitation() -> None:
    """A booking a week ahead: confirmations now, reminders 48 h and 2 h before, invitation."""
    start = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # Monday 14:00
    plan = _plan(start)
    assert plan == {
        ("confirmation", "sms"): NOW, ("confirmation", "email"): NOW,
        ("reminder", "sms"): start - timedelta(hours=48),
        ("reminder", "email"): start - timedelta(hours=48),
        ("short_reminder", "sms"): start - timedelta(hours=2),
        ("staff_request", "email"): NOW,
    }


def test_short_reminder_in_the_night_moves_to_the_evening_before() -> None:
    """09:00 start: 07:00 is quiet, so the SMS goes at 19:30 the evening before."""
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 09:00 Paris
    assert _plan(start)[("short_reminder", "sms")] == datetime(2026, 11, 29, 18, 30, tzinfo=UTC)
    assert not r.in_quiet_hours(datetime(2026, 11, 29, 18, 30, tzinfo=UTC), PARIS)


def test_no_phone_no_sms_no_email_no_mail() -> None:
    """Only the channels the usager has; nothing at all for neither, but the staff's."""
    start = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    assert {k for k in _plan(start, phone=False)} == {
        ("confirmation", "email"), ("reminder", "email"), ("staff_request", "email")}
    assert set(_plan(start, phone=False, email=False)) == {("staff_request", "email")}


def test_late_booking_has_no_48h_reminder() -> None:
    """Booked a day ahead: no 48 h reminder (it would be in the past)."""
    start = NOW + timedelta(hours=24)
    assert ("reminder", "sms") not in _plan(start)
    assert ("short_reminder", "sms") in _plan(start)


def test_notice_in_quiet_hours_waits_for_morning_unless_urgent() -> None:
    """A cancellation at 22:00 goes at 08:00; for a 08:30 start it goes at once."""
    night = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # 22:00 Paris
    later = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert r.notice_due(now=night, start=later, zone=PARIS) == \
        datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    soon = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)  # 08:30 Paris
    assert r.notice_due(now=night, start=soon, zone=PARIS) == \
        datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    very_soon = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # 07:30 Paris
    assert r.notice_due(now=night, start=very_soon, zone=PARIS) == night


def test_sms_not_moved_past_its_purpose() -> None:
    """An 08:00 start after a night: 06:00 moved to 19:30 is 12.5 h before, still useful."""
    start = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 08:00 Paris
    due = _plan(start)[("short_reminder", "sms")]
    assert start - due <= r.SMS_MOVED_AT_MOST
    assert due < start - r.SMS_BEFORE


def test_verdict_retires_stale_versions_and_skips_late_rows() -> None:
    """Changed → retired; cancelled → only cancellation notices; after start → skipped."""
    start = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    common = {"start": start, "end": end}
    assert r.verdict(kind="reminder", audience="usager", row_version=1, version=2,
                     cancelled=False, now=NOW, **common) is r.Verdict.RETIRED
    assert r.verdict(kind="reminder", audience="usager", row_version=2, version=2,
                     cancelled=True, now=NOW, **common) is r.Verdict.RETIRED
    assert r.verdict(kind="cancelled", audience="usager", row_version=2, version=2,
                     cancelled=True, now=NOW, **common) is r.Verdict.SEND
    assert r.verdict(kind="short_reminder", audience="usager", row_version=1, version=1,
                     cancelled=False, now=start + timedelta(minutes=1),
                     **common) is r.Verdict.SKIPPED
    assert r.verdict(kind="staff_request", audience="staff", row_version=1, version=1,
                     cancelled=False, now=start + timedelta(minutes=1),
                     **common) is r.Verdict.SEND
    assert r.verdict(kind="staff_request", audience="staff", row_version=1, version=1,
                     cancelled=False, now=end, **common) is r.Verdict.SKIPPED


def test_backoff_doubles_up_to_its_cap() -> None:
    """1, 2, 4, 8… seconds, never more than the cap."""
    assert [r.backoff(n, base=1, cap=10).total_seconds() for n in range(1, 6)] == \
        [1, 2, 4, 8, 10]
