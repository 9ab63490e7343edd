"""Where the checkout is, and the one place that puts it on ``sys.path`` (see ``support/__init__.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
INTEGRATION = TESTS / "integration"
# collections/ansible_collections/inventium/logical_replication is a symlink to REPO_ROOT.
COLLECTIONS = REPO_ROOT / "collections"


def use_checkout() -> None:
    """Make the collection (as ``ansible_collections.inventium.logical_replication``), ``tests/``
    (``lab_client``, ``support``) and ``tests/integration/`` (``pg_harness``, ``metrics_lab``) importable."""
    for path in (INTEGRATION, TESTS, COLLECTIONS):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


use_checkout()
