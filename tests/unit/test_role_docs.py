"""Every role documents every variable it accepts, in the three places a user looks.

For each role under ``roles/`` with a ``meta/argument_specs.yml``, every option of every entry
point must
- have a default in ``defaults/main.yml``, unless the argument spec marks it ``required: true``
  (those are documented there as a commented-out example instead);
- appear by name in the role's ``README.md``;
and every variable of ``defaults/main.yml`` must be an option of some entry point (a default
that the argument spec does not describe is undocumented and unchecked).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(path.parent.parent.name for path in ROLES_DIR.glob("*/meta/argument_specs.yml"))


def _argument_specs(role: str) -> dict[str, dict[str, Any]]:
    """``{entry point: {option: spec}}`` of a role."""
    data = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text()) or {}
    return {name: entry.get("options") or {} for name, entry in (data.get("argument_specs") or {}).items()}


def _defaults(role: str) -> dict[str, Any]:
    path = ROLES_DIR / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _options(role: str) -> dict[str, dict[str, Any]]:
    """Every option of every entry point (the first spec seen of a name)."""
    out: dict[str, dict[str, Any]] = {}
    for options in _argument_specs(role).values():
        for name, spec in options.items():
            out.setdefault(name, spec or {})
    return out


def test_roles_are_found() -> None:
    assert {"postgresql", "publisher", "subscriber", "lab_state", "docker_engine", "images"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_default_or_is_required(role: str) -> None:
    defaults = _defaults(role)
    missing = [
        name for name, spec in _options(role).items() if name not in defaults and not spec.get("required", False)
    ]
    assert not missing, f"roles/{role}: options without a default in defaults/main.yml nor required: true: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_an_option(role: str) -> None:
    options = _options(role)
    undocumented = [name for name in _defaults(role) if name not in options]
    assert not undocumented, f"roles/{role}: defaults/main.yml variables not in meta/argument_specs.yml: {undocumented}"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_in_the_readme(role: str) -> None:
    readme = ROLES_DIR / role / "README.md"
    assert readme.is_file(), f"roles/{role} has no README.md"
    text = readme.read_text()
    missing = [name for name in _options(role) if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text)]
    assert not missing, f"roles/{role}/README.md does not mention: {missing}"
