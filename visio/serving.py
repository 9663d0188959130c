"""``visio serve``'s process: the app on one port until SIGTERM or SIGINT, then a bounded
stop.

aiohttp's ``run_app`` ends by waiting, with no bound, for every task still pending to
finish its cancellation; one library task that never does (seen: SQLAlchemy closing an
aiosqlite connection whose thread had already gone) keeps the process alive forever, and
systemd or the supervisor would have to SIGKILL it. Here the same steps run (stop
accepting, a short drain of kept-alive connections, the requests in flight get ``grace``
seconds, the app's cleanup contexts), and
what is left afterwards gets LEFTOVER_SECONDS, after which the process exits anyway,
naming the tasks it left (their coroutine, never their data).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal

from aiohttp import web

from visio.observability import AccessLog

log = logging.getLogger("visio.serve")

#: How long the tasks left after the app's cleanup get to finish their cancellation.
LEFTOVER_SECONDS = 5.0
#: A stop that takes longer than the grace plus this (a cleanup stuck on a lock, a
#: thread or a full pipe) ends the process anyway, its threads' stacks written to stderr
#: first (faulthandler), exit code 1.
STOP_WATCHDOG_SECONDS = 30.0
#: After the port is closed, requests still arriving on kept-alive connections (a proxy's)
#: are answered for this long with "Connection: close", so that the proxy drops each
#: connection after its answer instead of sending a request on one the server closes
#: (a reset: nginx answers 502 to a POST it may not send twice). Longer than the proxy's
#: idle timeout for its kept-alive connections (deploy/nginx/visio.conf: 2 s), so that
#: the connections left afterwards are none of the proxy's.
DRAIN_SECONDS = 3.0


async def _serve(app: web.Application, *, host: str, port: int, reuse_port: bool,
                 grace: float) -> None:
    stop = asyncio.Event()
    draining = asyncio.Event()

    async def close_after(_request: web.Request, response: web.StreamResponse) -> None:
        if draining.is_set():
            response.force_close()

    app.on_response_prepare.append(close_after)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log_class=AccessLog, handle_signals=False,
                           shutdown_timeout=grace)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        log.info("serving on http://%s:%d", host, port)
        await stop.wait()
        log.info("stopping: no new connection, %.0f s for the requests in flight", grace)
        faulthandler.dump_traceback_later(grace + STOP_WATCHDOG_SECONDS, exit=True)
        draining.set()
        await site.stop()  # the port closes: a proxy's new connections go elsewhere
        await asyncio.sleep(min(DRAIN_SECONDS, grace))
    finally:
        # Stop accepting, close the signaling sockets (1012), let requests finish within
        # the grace, then the app's cleanup contexts (dispatcher, scheduler, database).
        await runner.cleanup()


def _name(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or task.get_name()


def serve(app: web.Application, *, host: str, port: int, reuse_port: bool,
          grace: float) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; always returns once stopped."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(app, host=host, port=port, reuse_port=reuse_port,
                                       grace=grace))
    finally:
        left = asyncio.all_tasks(loop)
        stuck: set[asyncio.Task[object]] = set()
        for task in left:
            task.cancel()
        if left:
            _, stuck = loop.run_until_complete(asyncio.wait(left, timeout=LEFTOVER_SECONDS))
            if stuck:
                log.warning("exiting with %d task(s) that ignored their cancellation: %s",
                            len(stuck), ", ".join(sorted({_name(t) for t in stuck})))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        if not stuck:
            loop.close()
        faulthandler.cancel_dump_traceback_later()
