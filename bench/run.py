"""Entry point of ``make bench``: booking benchmark, then the signaling one if present.

Prints markdown tables. Exits 0 when every benchmark ran, even if a target was missed
(such rows say "missed"); 1 only when a benchmark itself failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_booking  # noqa: E402

SIGNALING = HERE / "bench_signaling.py"
SIGNALING_TIMEOUT = 900  # seconds


def run_signaling() -> bool:
    """Run bench_signaling.py in a subprocess and print its output; False if it failed."""
    print("\n## Signaling\n", flush=True)
    try:
        done = subprocess.run(
            [sys.executable, str(SIGNALING)], cwd=HERE.parent, capture_output=True, text=True,
            timeout=SIGNALING_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"bench_signaling.py did not finish within {SIGNALING_TIMEOUT} s.")
        return False
    print(done.stdout.rstrip())
    if done.returncode != 0:
        print(done.stderr.rstrip(), file=sys.stderr)
        print(f"\nbench_signaling.py exited with status {done.returncode}.")
        return False
    return True


def main() -> int:
    started = time.perf_counter()
    print("## Booking\n", flush=True)
    table, complete = bench_booking.run()
    print(table)
    print(f"\n(booking benchmark: {time.perf_counter() - started:.0f} s)", flush=True)
    if SIGNALING.exists():
        complete = run_signaling() and complete
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
