"""Shared helpers of the tests, benchmarks and scripts of this repository.

Importing ``support`` (any submodule) makes the checkout importable the way Ansible imports it:
:mod:`support.paths` puts ``collections/`` (whose ``ansible_collections/inventium/logical_replication``
is a symlink to the repository root), ``tests/`` and ``tests/integration/`` on ``sys.path``, once.
That is the only place that does; everything else imports module_utils as
``ansible_collections.inventium.logical_replication.plugins.module_utils...``.

Under pytest, ``tests/conftest.py`` calls it. A program outside pytest (``scripts/``,
``benchmarks/``, Molecule's Testinfra tests) first puts ``tests/`` on ``sys.path`` itself, then
calls it::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.paths import use_checkout  # noqa: E402

    use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

:mod:`support.ansible` builds the environment of every Ansible run of the tests and runs a
playbook or a single module.
"""

from __future__ import annotations

from support import paths  # noqa: F401  (puts the checkout on sys.path)
