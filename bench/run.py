"""Entry point of ``make bench``: booking benchmark, contract micro-benchmark, calendars,
notifications, 1 and 2 server processes, then the signaling one if present.

Prints markdown tables. Exits 0 when every benchmark ran, even if a target was missed
(such rows say "missed"); 1 only when a benchmark itself failed. ``--quick`` is a smoke
run with fewer repetitions (about a minute; its tails mean little); ``--only`` runs one
part.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_booking  # noqa: E402
import bench_calendars  # noqa: E402
import bench_contract  # noqa: E402
import bench_national  # noqa: E402
import bench_notify  # noqa: E402
import bench_processes  # noqa: E402
import bench_purge  # noqa: E402
import bench_webhooks  # noqa: E402

SIGNALING = HERE / "bench_signaling.py"
SIGNALING_TIMEOUT = 900  # seconds


def run_signaling(quick: bool = False) -> bool:
    """Run bench_signaling.py in a subprocess and print its output; False if it failed."""
    print("\n## Signaling\n", flush=True)
    command = [sys.executable, str(SIGNALING), *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(
            command, cwd=HERE.parent, capture_output=True, text=True,
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


def _run_part(name: str, title: str, run_part: Callable[..., tuple[str, bool]], *,
              quick: bool) -> bool:
    """Run one benchmark part and print its table; a failing part still lets the others run."""
    started = time.perf_counter()
    print(f"\n## {title}\n", flush=True)
    try:
        table, done = run_part(quick=quick)
        print(table)
    except Exception as err:  # the other parts' numbers still count
        print(f"bench_{name} failed: {type(err).__name__}: {err}")
        done = False
    print(f"\n({name} benchmark: {time.perf_counter() - started:.0f} s)", flush=True)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions: a smoke run, not numbers to publish")
    parser.add_argument("--only",
                        choices=["booking", "contract", "calendars", "notify", "processes",
                                 "webhooks", "signaling"],
                        help="run one part only")
    parser.add_argument("--scale", choices=["departement", "national"], default="departement",
                        help="national: the booking bench on the national dataset beside the "
                             "one-département one (PostgreSQL), and nothing else")
    parser.add_argument("--small", action="store_true",
                        help="with --scale national: a small country around the bench site "
                             "(a smoke run of that bench; its figures mean little)")
    args = parser.parse_args()
    complete = True
    if args.scale == "national":
        started = time.perf_counter()
        print("## Booking at national scale\n", flush=True)
        table, done = bench_national.run(quick=args.quick, small=args.small)
        print(table)
        print(f"\n(national benchmark: {time.perf_counter() - started:.0f} s)", flush=True)
        started = time.perf_counter()
        print("\n## Bookings during a retention purge (national dataset)\n", flush=True)
        try:
            table, purged = bench_purge.run(quick=args.quick, small=args.small)
            print(table)
        except Exception as err:  # the national table above still counts
            print(f"bench_purge failed: {type(err).__name__}: {err}")
            purged = False
        print(f"\n(purge benchmark: {time.perf_counter() - started:.0f} s)", flush=True)
        return 0 if done and purged else 1
    if args.only in (None, "booking"):
        started = time.perf_counter()
        print("## Booking\n", flush=True)
        table, done = bench_booking.run(quick=args.quick)
        print(table)
        print(f"\n(booking benchmark: {time.perf_counter() - started:.0f} s)", flush=True)
        complete = done and complete
    parts = (("contract", "Contract (2,000-slot answer)", bench_contract.run),
             ("calendars", "Imported calendars", bench_calendars.run),
             ("notify", "Notifications (10,000 due e-mails into a local SMTP sink)",
              bench_notify.run),
             ("webhooks", "Webhooks (10,000 events to 10 endpoints on a local receiver)",
              bench_webhooks.run),
             ("processes", "HTTP slot search with 1 and 2 server processes (--workers)",
              bench_processes.run))
    for name, title, run_part in parts:
        if args.only in (None, name):
            complete = _run_part(name, title, run_part, quick=args.quick) and complete
    if args.only in (None, "signaling") and SIGNALING.exists():
        complete = run_signaling(args.quick) and complete
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
