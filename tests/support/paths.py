"""Where the checkout is, and the one place that puts it on ``sys.path`` (see ``support/__init__.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
INTEGRATION = TESTS / "integration"
# collections/ansible_collections/inventium/logical_replication is a symlink to REPO_ROOT.
COLLECTIONS = REPO_ROOT / "collections"
# The metrics sampler: a program the sampler role installs, not a module of the collection.
SAMPLER_PROGRAM = REPO_ROOT / "roles" / "sampler" / "files" / "inventium_sampler.py"


def use_checkout() -> None:
    """Make the collection (as ``ansible_collections.inventium.logical_replication``), ``tests/``
    (``lab_client``, ``support``) and ``tests/integration/`` (``pg_harness``, ``metrics_lab``) importable."""
    for path in (INTEGRATION, TESTS, COLLECTIONS):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def load_sampler(name: str = "inventium_sampler") -> ModuleType:
    """A fresh module object of the sampler program (not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, SAMPLER_PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


use_checkout()
