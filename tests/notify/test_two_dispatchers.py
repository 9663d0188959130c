"""Two dispatcher processes on one PostgreSQL database send each message exactly once."""

from __future__ import annotations

import signal

import pytest

from tests.notify.receivers import SmtpSink, duplicates
from tests.notify.test_crash import _env, _fill, _worker, settled
from visio.db import Database


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: SKIP LOCKED claims are what this file tests."""
    return str(request.param)


@pytest.mark.slow
async def test_two_dispatchers_send_each_message_once(
        db: Database, database_url: str, smtp_sink: SmtpSink) -> None:
    """400 due e-mails, two `visio worker` processes: 400 arrivals, no repeat at all."""
    count = 400
    expected = await _fill(db, count)
    env = _env(database_url, smtp_sink, lease=60)
    workers = [await _worker(env), await _worker(env)]
    try:
        await settled(smtp_sink, db)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            await worker.wait()
    ids = smtp_sink.ids()
    assert duplicates(ids) == 0
    assert set(ids) == expected
    assert [w.returncode for w in workers] == [0, 0]  # both ran until told to stop
