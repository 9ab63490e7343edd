"""Make ``ansible_collections.inventium.logical_replication`` importable from the checkout.

``collections/ansible_collections/inventium/logical_replication`` is a symlink to the repository
root, so putting ``collections/`` on ``sys.path`` lets unit tests import module_utils exactly the
way modules do.
"""

from __future__ import annotations

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
