"""Testinfra tests of Molecule scenario ``lab``: the shared lab client and fixtures.

``tests/lab_client.py`` (repository root) holds the helpers every lab test uses; it is put on
``sys.path`` here, explicitly, because Molecule runs pytest from this scenario's directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[3] / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
