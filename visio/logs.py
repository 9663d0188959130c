"""Logging set-up. Personal data never reaches a log: nothing here logs bodies or SQL."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; database drivers stay at WARNING whatever the level."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # SQL statements and their parameters would carry usagers' names: never log them.
    for name in ("sqlalchemy", "aiosqlite", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)
