"""Logging set-up. Personal data never reaches a log: nothing here logs bodies or SQL."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from visio.observability import REQUEST_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, error type.

    An exception is named by its type only: its text or traceback could quote a value.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level``, as text or JSON lines; database drivers stay at WARNING,
    and so does APScheduler unless ``level`` is DEBUG."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet_drivers()
    quiet_scheduler(level)


def quiet_drivers() -> None:
    """Database drivers stay at WARNING whatever the root level: SQL statements and their
    parameters would carry usagers' names, numbers and notes."""
    for name in ("sqlalchemy", "aiosqlite", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)


# APScheduler's warnings that a run was skipped because the previous one still runs, or
# started late: on a busy machine one every tick of a job that outlasts its interval. The
# run in flight already does the work, so they say nothing either.
_SCHEDULING_NOISE = (
    'Execution of job "%s" skipped: maximum number of running instances reached',
    'Run time of job "%s" was missed by',
)


class SchedulingNoiseFilter(logging.Filter):
    """Drops APScheduler's skipped-run and late-run warnings (kept at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_SCHEDULING_NOISE))


_NOISE_FILTER = SchedulingNoiseFilter()
_NOISY_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


def quiet_scheduler(level: str) -> None:
    """APScheduler's "Running job" / "executed successfully" lines, two per run of every
    job, drown what the jobs themselves say: kept for DEBUG only. So are its warnings that
    a run was skipped or late because the previous one still ran (a loaded machine): a job
    says one line when it did something, nothing otherwise."""
    debug = logging.getLevelName(level.upper()) == logging.DEBUG
    logging.getLogger("apscheduler").setLevel(logging.NOTSET if debug else logging.WARNING)
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if debug:
            logger.removeFilter(_NOISE_FILTER)
        elif _NOISE_FILTER not in logger.filters:
            logger.addFilter(_NOISE_FILTER)
