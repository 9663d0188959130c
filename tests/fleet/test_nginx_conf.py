"""The nginx file is the documented one, and nginx accepts it as the fleet renders it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fleet.harness import NGINX, NGINX_CONF, ROOT, render_nginx
from tests.support import missing_service


def test_the_documented_nginx_file_is_the_shipped_one() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    assert f"```nginx\n{NGINX_CONF.read_text()}```" in doc


def test_nginx_accepts_the_file(tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        missing_service(f"{NGINX} not installed (Debian package nginx-light)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx((1, 2), 3, tmp_path))
    done = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
