"""Testinfra tests of Molecule scenario ``lab``: the shared lab client and fixtures.

``tests/lab_client.py`` (repository root) holds the helpers every lab test uses. Molecule runs
pytest from this scenario's directory, so ``tests/`` is put on ``sys.path`` here, explicitly, and
``support`` (``tests/support``) does the rest, as for every test of the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[3] / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path
