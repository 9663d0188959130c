"""`make fleet`: the fleet test, its table printed (python -m tests.fleet [--keep])."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fleet.faults import run, table


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="visio-fleet-"))
    started = time.monotonic()
    rows = asyncio.run(run(work))
    print(table(rows))
    print(f"\n{len(rows)} rows, {sum(not r.verdict for r in rows)} not holding; "
          f"{time.monotonic() - started:.0f} s")
    if "--keep" in sys.argv:
        print(f"logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.verdict for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
