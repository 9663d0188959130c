"""The call page's link state machine (visio/web/static/link_quality.js) under the
machine's Node: the thresholds, audio only after ~5 s of a very weak link and back after
~30 s of good measures, cuts seen from inbound packets, and "unusable"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import missing_service

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests" / "js" / "link_quality.test.mjs"


def test_link_quality_state_machine_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        missing_service("node is not installed (the call page's JS modules run under it)")
    assert node is not None
    # The page's module is a plain .js file: Node reads it as an ES module, as browsers do.
    done = subprocess.run([node, "--experimental-default-type=module", "--test", str(TESTS)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # Every test of the file ran and passed (none skipped or left out by a typo).
    count = TESTS.read_text().count("\ntest(")
    assert f"# pass {count}" in done.stdout, done.stdout[-2000:]
    assert "# fail 0" in done.stdout
