"""Alembic migrations are the schema: models and migrations never drift apart."""

from __future__ import annotations

from alembic import command

from tests.conftest import in_thread
from visio.migrate import alembic_config


def test_autogenerate_finds_no_difference_after_upgrade(database_url: str) -> None:
    # `alembic check` raises if autogenerate would emit any operation.
    in_thread(lambda: command.check(alembic_config(database_url)))


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    config = alembic_config(database_url)
    in_thread(lambda: command.downgrade(config, "base"))
    in_thread(lambda: command.upgrade(config, "heads"))
    in_thread(lambda: command.check(config))
