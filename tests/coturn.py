"""A real coturn on loopback, configured as docs/deployment.md says (a pytest plugin)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import missing_service

TURNSERVER = "/usr/bin/turnserver"
SECRETS = ("current-turn-secret", "previous-turn-secret")
REALM = "visio.test"


def _free_port(kind: int, ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], within: float = 10.0,
                    ip: str = "127.0.0.1") -> None:
    """Poll coturn's TCP listener (it listens on TCP and UDP on the same port)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"turnserver exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((ip, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError("turnserver did not start listening")


@dataclass
class Coturn:
    """A running turnserver: its URL and its process (tests may pause it to cut relays)."""

    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def running_coturn(work: Path, ip: str = "127.0.0.1") -> Iterator[Coturn]:
    """Start coturn on loopback (or ``ip``, e.g. an emulated link's server side) with the
    configuration of docs/deployment.md."""
    if shutil.which(TURNSERVER) is None:
        missing_service(f"{TURNSERVER} not installed (Debian package coturn)")
    port = _free_port(socket.SOCK_STREAM, ip)
    low = 49152 + (port % 1000) * 10
    config = "\n".join(
        [
            f"listening-port={port}",
            f"listening-ip={ip}",
            f"relay-ip={ip}",
            f"min-port={low}",
            f"max-port={low + 200}",
            "fingerprint",
            "use-auth-secret",
            *(f"static-auth-secret={s}" for s in SECRETS),
            f"realm={REALM}",
            "no-cli",
            "no-tls",
            "no-dtls",
            "no-multicast-peers",
            # Only for this loopback test: production denies private and loopback peers.
            "allow-loopback-peers",
            f"pidfile={work / 'turnserver.pid'}",
            f"userdb={work / 'turndb'}",
            f"log-file={work / 'turn.log'}",
            "simple-log",
            "",
        ]
    )
    conf = work / "turnserver.conf"
    conf.write_text(config)
    proc = subprocess.Popen(
        [TURNSERVER, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, proc, ip=ip)
        yield Coturn(url=f"turn:{ip}:{port}?transport=udp", process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start coturn on loopback with the configuration of docs/deployment.md."""
    with running_coturn(tmp_path_factory.mktemp("coturn")) as server:
        yield server.url
