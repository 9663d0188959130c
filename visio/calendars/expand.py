"""A fetched calendar's expansion, in a child process the server can stop.

A 200-byte RRULE can ask for millions of occurrences, or for a search to the year 9999
inside one step of the library's iterator, where no counter can stop it. So each
expansion runs in its own process, forked from a server process that has icalendar
loaded already (multiprocessing's "forkserver": nothing of the web server is inherited,
no socket, no thread): its address space is capped (RLIMIT_AS), it runs at a lower
priority than the server, it is killed when its time is up, and every child still
running is killed when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import multiprocessing.connection
import os
import resource
from datetime import datetime
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.process import BaseProcess
from time import monotonic

from visio.calendars.busy import CalendarUnreadable, busy_intervals
from visio.settings import Settings

Intervals = list[tuple[datetime, datetime]]

#: The children's niceness: the server's own requests come first.
NICENESS = 10
#: How long a killed child's exit status may take to arrive.
REAP_SECONDS = 5.0

_CONTEXT = multiprocessing.get_context("forkserver")
# Imported once in the fork server, so that a child costs a fork, not imports.
PRELOAD = ["visio.calendars.expand"]


class _Popen(popen_forkserver.Popen):
    """The fork server's launch, without the parent's ``__main__`` in what it sends.

    Given it, each child runs the server's main script again before its work (the
    ``visio`` script imports the whole application: seconds per calendar); the fork
    server's own "__main__" preload never receives that path (CPython 3.11 asks for a
    "main_path" key that the preparation data names "init_main_from_path"). The rest is
    ``popen_forkserver.Popen._launch`` as it is.
    """

    def _launch(self, process_obj: BaseProcess) -> None:
        prep_data = spawn.get_preparation_data(process_obj.name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        # Neither is in typeshed: the fds to pass, and the function closing them.
        fds = self._fds  # type: ignore[attr-defined]
        self.sentinel, w = forkserver.connect_to_new_process(fds)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds,  # type: ignore[attr-defined]
                                       (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: BaseProcess) -> _Popen:
        return _Popen(process_obj)


def _vm_size() -> int:
    """This process's address space now, in bytes (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(writer: multiprocessing.connection.Connection, body: bytes, start: datetime,
           end: datetime, zone: str, seconds: float, memory_bytes: int) -> None:
    """The child's work: the intervals, or an error code, sent back once."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    limit = _vm_size() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    answer: tuple[str, Intervals | str]
    try:
        answer = ("ok", busy_intervals(body, start=start, end=end, zone=zone,
                                       deadline=monotonic() + seconds))
    except CalendarUnreadable as err:
        answer = ("error", err.code)
    except MemoryError:
        answer = ("error", "too_many_events")
    del body
    writer.send(answer)
    writer.close()


async def _readable(fd: int) -> None:
    """Wait, without blocking the event loop, until ``fd`` can be read (or is closed)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class Expander:
    """Runs expansions in child processes; ``close`` kills those still running."""

    def __init__(self, *, seconds: float, memory_bytes: int) -> None:
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self._running: set[BaseProcess] = set()
        self._closed = False
        _CONTEXT.set_forkserver_preload(PRELOAD)

    @classmethod
    def from_settings(cls, settings: Settings) -> Expander:
        """The limits of VISIO_CALENDAR_EXPAND_SECONDS and VISIO_CALENDAR_EXPAND_MEMORY_MB."""
        return cls(seconds=settings.calendar_expand_seconds,
                   memory_bytes=settings.calendar_expand_memory_mb * 1024 * 1024)

    @property
    def running(self) -> int:
        """Children expanding now."""
        return len(self._running)

    async def busy(self, body: bytes, *, start: datetime, end: datetime,
                   zone: str) -> Intervals:
        """``busy_intervals`` of ``body`` in a child; CalendarUnreadable on any failure."""
        if self._closed:
            raise CalendarUnreadable("stopped")
        reader, writer = _CONTEXT.Pipe(duplex=False)
        process = _Process(
            target=_child, args=(writer, body, start, end, zone, self.seconds,
                                 self.memory_bytes),
            name="visio-calendar-expand", daemon=True)
        # Starting sends the body to the child, and the first start also starts the fork
        # server (it imports icalendar: a second): a thread, not the event loop.
        started = asyncio.ensure_future(asyncio.to_thread(process.start))
        try:
            try:
                await asyncio.shield(started)
            finally:
                if not started.done():  # cancelled meanwhile: the child must not outlive us
                    await asyncio.wait({started})
            self._running.add(process)
            if self._closed:
                raise CalendarUnreadable("stopped")
            writer.close()
            try:
                async with asyncio.timeout(self.seconds):
                    await _readable(reader.fileno())
                    answer: tuple[str, Intervals | str] = reader.recv()
            except TimeoutError as err:
                raise CalendarUnreadable("timeout") from err
            except (EOFError, OSError) as err:
                # Gone without an answer: killed by its memory limit, or by close().
                raise CalendarUnreadable("stopped" if self._closed
                                         else "too_many_events") from err
        finally:
            writer.close()
            reader.close()
            await self._end(process)
        kind, value = answer
        if kind != "ok" or isinstance(value, str):
            raise CalendarUnreadable(str(value))
        return value

    async def _end(self, process: BaseProcess) -> None:
        if process.pid is None:
            return  # never started
        if process.exitcode is None:
            process.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REAP_SECONDS):
                    await _readable(process.sentinel)
        self._running.discard(process)
        if process.exitcode is not None:
            process.close()

    def close(self) -> None:
        """Kill every child still expanding (the server is stopping); refuse new ones."""
        self._closed = True
        for process in list(self._running):
            with contextlib.suppress(ValueError, OSError):
                process.kill()
