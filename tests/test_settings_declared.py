"""Each setting is declared once: read from its variable, known to the typo warning,
documented in the README's Configuration table."""

from __future__ import annotations

import re
from dataclasses import Field
from pathlib import Path
from typing import Any

import pytest

from visio.settings import Choice, Settings, setting_fields, unknown, variable, variables

README = Path(__file__).resolve().parents[1] / "README.md"
DECLARED = {f.name: f for f in setting_fields()}


def _sample(declared: Field[Any], usual: Any) -> str:
    """A valid text for the variable whose value differs from the usual one."""
    parse = declared.metadata["parse"]
    if isinstance(parse, Choice):
        return next(word for word in parse.allowed if word != usual)
    if isinstance(usual, bool):
        return "0" if usual else "1"
    if isinstance(usual, int | float):
        return "7"
    if isinstance(usual, tuple):
        return "10.9.8.0/24" if declared.name in ("trusted_proxies", "metrics_allowed") \
            else "one,two"
    return "sample"


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_setting_is_read_from_its_variable(name: str) -> None:
    """VISIO_<NAME> changes the setting, and is not reported as unknown."""
    declared = DECLARED[name]
    usual = getattr(Settings.from_env({}), name)
    text = _sample(declared, usual)
    read = Settings.from_env({variable(declared): text})
    assert getattr(read, name) != usual
    assert read.extra == {}
    assert declared.metadata["doc"].strip()


def _readme_variables() -> set[str]:
    """The VISIO_ variables named in the first column of README's Configuration table."""
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `VISIO_")]
    assert rows, "no Configuration table in README.md"
    return {name for row in rows for name in re.findall(r"VISIO_[A-Z0-9_]+",
                                                         row.split("|")[1])}


def test_no_documented_variable_is_reported_unknown() -> None:
    """What the README tells operators to set, ``visio serve`` does not call a typo."""
    documented = _readme_variables()
    assert unknown(dict.fromkeys(documented, "x")) == {}
    assert documented <= set(variables())


def test_every_setting_is_documented_in_the_readme() -> None:
    """No setting is missing from the README's Configuration table."""
    missing = {variable(f) for f in setting_fields()} - _readme_variables()
    assert missing == set()


def test_a_misspelt_variable_is_still_reported() -> None:
    """A near-miss of a real variable is kept aside for the warning."""
    assert set(Settings.from_env({"VISIO_SEARCH_CACHE_ENTRYS": "3"}).extra) == {
        "VISIO_SEARCH_CACHE_ENTRYS"}
