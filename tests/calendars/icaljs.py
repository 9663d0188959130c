"""The second parser: Mozilla's ical.js under the machine's Node (tests/js, `.ci/run`)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from tests.support import missing_service

JS = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS / "parse_ical.mjs"


def node() -> str:
    """The node executable with ical.js installed beside the script, or a loud skip."""
    found = shutil.which("node")
    if found is None:
        missing_service("node is not installed (ical.js runs under it)")
    if not (JS / "node_modules" / "ical.js" / "package.json").is_file():
        missing_service("ical.js is not installed: npm install --prefix tests/js")
    assert found is not None
    return found


async def parse(text: bytes) -> dict[str, Any]:
    """What ical.js reads in ``text``: calendar properties and events (see the script)."""
    process = await asyncio.create_subprocess_exec(
        node(), str(SCRIPT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(text)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result
