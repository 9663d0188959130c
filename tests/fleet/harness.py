"""The fleet of `make fleet`: nginx (deploy/nginx/visio.conf) in front of two `visio serve`
instances, one `visio worker`, a private PostgreSQL cluster, a private Redis, coturn, an
SMTP receiver and an HTTP SMS gateway, every one on free ports in a temporary directory.

Each service is a child process the harness can kill, stop and start again; nothing
touches the machine's shared PostgreSQL or Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.coturn import SECRETS, running_coturn
from tests.notify.receivers import SmsSink, SmtpSink, free_port
from tests.support import missing_service

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "visio.conf"
NGINX = "/usr/sbin/nginx"
REDIS = "/usr/bin/redis-server"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


async def until(condition: Callable[[], Any], *, within: float, what: str,
                every: float = 0.05) -> float:
    """Poll ``condition`` (sync or async) until it is true; the seconds it took."""
    start = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(every)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------ nginx


def render_nginx(upstreams: tuple[int, int], listen: int, work: Path) -> str:
    """deploy/nginx/visio.conf with only its ports and log path replaced, in a minimal
    main configuration of our own (prefix, pid, temp paths in ``work``)."""
    site = NGINX_CONF.read_text()
    replacements = {
        "server 127.0.0.1:8081 ": f"server 127.0.0.1:{upstreams[0]} ",
        "server 127.0.0.1:8082 ": f"server 127.0.0.1:{upstreams[1]} ",
        "listen 80;": f"listen 127.0.0.1:{listen};",
        "/var/log/nginx/visio.access.log": str(work / "access.log"),
    }
    for old, new in replacements.items():
        assert site.count(old) == 1, f"{NGINX_CONF} changed: {old!r} not found once"
        site = site.replace(old, new)
    (work / "visio.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {work / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
            f"pid {work / 'nginx.pid'};\nerror_log {work / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n{temp}\n    include {work / 'visio.conf'};\n}}\n")


# ------------------------------------------------------------------------ processes


@dataclass
class Child:
    """A child process with its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> None:
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self._out,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def ended(self, within: float = 30.0) -> int:
        """Its exit code once it has ended."""
        assert self.process is not None
        process = self.process
        await until(lambda: process.poll() is not None, within=within,
                    what=f"{self.name} to exit")
        if self._out is not None:
            self._out.close()
        return int(process.returncode)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if not self.alive:
            return
        self.signal(signal.SIGTERM)
        try:
            await self.ended(15)
        except AssertionError:
            self.signal(signal.SIGKILL)
            await self.ended(5)


@dataclass
class Postgres:
    """A private cluster (initdb, pg_ctl) on a free port, trust authentication."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fleet-pg-")))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "visio", driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_postgres, *argv], check=check, capture_output=True,
                              cwd=self.directory, timeout=120)

    def bin(self, name: str) -> str:
        pg = _pg_bin()
        assert pg is not None
        return str(pg / name)

    def init(self) -> None:
        if os.geteuid() == 0:
            ids = pwd.getpwnam("postgres")
            os.chown(self.directory, ids.pw_uid, ids.pw_gid)
        self._run(self.bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")
        self._run(self.bin("pg_ctl"), "-D", str(self.data), "-l",
                  str(self.directory / "postgres.log"), "-o", options, "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "stop", check=False)

    def psql(self, sql: str, database: str = "visio") -> str:
        done = self._run(self.bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                         "postgres", "-d", database, "-At", "-v", "ON_ERROR_STOP=1",
                         "-c", sql)
        return done.stdout.decode().strip()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Instance:
    """One `visio serve` on its own port."""

    port: int
    child: Child

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """Everything running; ``url`` is nginx."""

    work: Path
    postgres: Postgres
    redis: Child
    redis_port: int
    nginx: Child
    nginx_port: int
    instances: list[Instance]
    worker: Child
    smtp: SmtpSink
    sms: SmsSink
    turn_url: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.nginx_port}/signaling/ws"

    def instance_env(self, port: int) -> dict[str, str]:
        return {**self.env, "VISIO_PORT": str(port), "VISIO_DISPATCH": "0"}

    async def start_instance(self, instance: Instance) -> None:
        instance.child.start()
        await healthy(instance)

    async def start_worker(self) -> None:
        self.worker.start()
        await asyncio.sleep(0)

    def start_redis(self) -> None:
        self.redis.start()

    async def wait_redis(self) -> float:
        port = self.redis_port
        return await until(lambda: _listening(port), within=30, what="redis")


async def healthy(instance: Instance, within: float = 60.0) -> float:
    """Until the instance answers /healthz; fails at once if it died."""
    async with aiohttp.ClientSession() as session:
        async def up() -> bool:
            if not instance.child.alive:
                raise AssertionError(f"{instance.child.name} exited: "
                                     f"{instance.child.log.read_text()[-3000:]}")
            try:
                async with session.get(f"{instance.base}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False
        return await until(up, within=within, what=f"{instance.child.name} healthy", every=0.1)


def check_tools() -> None:
    """Skip loudly (fail in CI) when a program the fleet needs is missing."""
    for path, package in ((NGINX, "nginx-light"), (REDIS, "redis-server"),
                          ("/usr/bin/turnserver", "coturn")):
        if not Path(path).exists():
            missing_service(f"{path} not installed (Debian package {package})")
    if _pg_bin() is None:
        missing_service("PostgreSQL server binaries (Debian package postgresql)")


@contextlib.asynccontextmanager
async def running_fleet(work: Path) -> AsyncIterator[Fleet]:
    """Start the whole fleet; stop it all afterwards (whatever state the faults left)."""
    check_tools()
    children: list[Child] = []
    postgres = Postgres()
    smtp, sms = SmtpSink(), SmsSink()
    with running_coturn(work) as coturn:
        try:
            await asyncio.to_thread(postgres.init)
            await asyncio.to_thread(postgres.start)
            await asyncio.to_thread(postgres.psql, "CREATE DATABASE visio", "postgres")
            redis_port = free_port()
            redis = Child("redis", [REDIS, "--port", str(redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"], work / "redis.log")
            children.append(redis)
            redis.start()
            smtp.start()
            await sms.start()
            nginx_port = free_port()
            ports = (free_port(), free_port())
            env = {k: v for k, v in os.environ.items() if not k.startswith("VISIO_")}
            env.update({
                "PYTHONPATH": str(ROOT),
                "VISIO_DATABASE_URL": postgres.url(),
                "VISIO_SECRET_KEY": "fleet-secret-" + "x" * 32,
                "VISIO_HOST": "127.0.0.1",
                "VISIO_BASE_URL": f"http://127.0.0.1:{nginx_port}",
                "VISIO_TRUSTED_PROXIES": "127.0.0.1",
                "VISIO_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "VISIO_LOG_LEVEL": "WARNING",
                "VISIO_SHUTDOWN_GRACE_SECONDS": "10",
                "VISIO_SEARCH_RATE_PER_MINUTE": "100000",
                "VISIO_TURN_URLS": coturn.url,
                "VISIO_TURN_SECRETS": ",".join(SECRETS),
                "VISIO_SMTP_HOST": "127.0.0.1",
                "VISIO_SMTP_PORT": str(smtp.port),
                "VISIO_MAIL_FROM": "rdv@visio.test",
                "VISIO_SMS_ADAPTER": "http",
                "VISIO_SMS_HTTP_URL": sms.url,
                "VISIO_SMS_HTTP_TOKEN": sms.token,
                "VISIO_DISPATCH_INTERVAL_SECONDS": "0.5",
                "VISIO_DISPATCH_LEASE_SECONDS": "10",
                "VISIO_DISPATCH_RETRY_SECONDS": "1",
                "VISIO_DISPATCH_RETRY_MAX_SECONDS": "4",
                "VISIO_DISPATCH_MAX_ATTEMPTS": "1000",
            })
            # Migrations once, before anything serves (docs/deployment.md).
            upgrade = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "visio", "db", "upgrade", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await upgrade.communicate()
            assert upgrade.returncode == 0, out.decode()
            fleet = Fleet(
                work=work, postgres=postgres, redis=redis, redis_port=redis_port,
                nginx=Child("nginx", [], work / "nginx.out"), nginx_port=nginx_port,
                instances=[], worker=Child("worker", [], work / "worker.log"),
                smtp=smtp, sms=sms, turn_url=coturn.url, env=env)
            for n, port in enumerate(ports):
                child = Child(f"serve-{n + 1}", [sys.executable, "-m", "visio", "serve"],
                              work / f"serve-{n + 1}.log", env=fleet.instance_env(port))
                children.append(child)
                fleet.instances.append(Instance(port=port, child=child))
            fleet.worker = Child("worker", [sys.executable, "-m", "visio", "worker"],
                                 work / "worker.log", env=env)
            children.append(fleet.worker)
            (work / "nginx").mkdir()
            conf = work / "nginx" / "nginx.conf"
            conf.write_text(render_nginx(ports, nginx_port, work / "nginx"))
            fleet.nginx = Child("nginx", [NGINX, "-p", str(work / "nginx"), "-c", str(conf)],
                                work / "nginx.out")
            children.append(fleet.nginx)
            await fleet.wait_redis()
            for instance in fleet.instances:
                instance.child.start()
            fleet.worker.start()
            fleet.nginx.start()
            await asyncio.gather(*(healthy(i) for i in fleet.instances))
            await until(lambda: _listening(nginx_port), within=30, what="nginx")
            yield fleet
        finally:
            for child in reversed(children):
                await child.stop()
            smtp.stop()
            await sms.stop()
            await asyncio.to_thread(postgres.stop, "immediate")
            postgres.remove()


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file (for failure messages)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
