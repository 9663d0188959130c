"""Make the top-level `visio` package importable for the pure domain tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("visio") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
