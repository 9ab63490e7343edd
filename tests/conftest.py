"""Every pytest run under ``tests/``: the checkout on ``sys.path``, once, through ``support``.

``support.paths.use_checkout`` (``tests/support``) puts ``collections/`` (so module_utils import exactly the way
modules import them: ``ansible_collections.inventium.logical_replication.plugins.module_utils``),
``tests/`` and ``tests/integration/`` on ``sys.path``. ``tests/`` itself is put there first
because ``--import-mode=importlib`` does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path
