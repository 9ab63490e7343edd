"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML.

ansible-test sanity (validate-modules) checks far more, but only in its own stage and a minute later; a plain
scalar with ": " in a description (YAML reads a key there) is the usual slip, and this finds it in a second.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

MODULES = sorted(
    path.stem
    for path in (Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py")
    if path.stem != "__init__"
)


@pytest.mark.parametrize("name", MODULES)
def test_module_docs_parse(name):
    module = importlib.import_module(f"ansible_collections.inventium.logical_replication.plugins.modules.{name}")
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert documentation["module"] == name
    assert isinstance(yaml.safe_load(module.RETURN), dict)
    assert yaml.safe_load(module.EXAMPLES)
