"""experiments/README.md documents exactly what the code accepts and measures.

The tables between ``<!-- steps:begin -->`` / ``<!-- steps:end -->`` and ``<!-- catalog:begin -->`` /
``<!-- catalog:end -->`` are rendered here from ``STEPS`` and ``CATALOG``; the sections listing the
keys and the options are checked against the spec validator's tables. After changing a step or a
measure, regenerate the README's tables with::

    UPDATE_EXPERIMENT_README=1 .venv/bin/python -m pytest tests/unit/test_experiment_readme.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _experiment_spec as spec
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_catalog import CATALOG
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_steps import (
    COMMON_PARAMS,
    STEPS,
)

README = Path(__file__).resolve().parents[2] / "experiments" / "README.md"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def default_text(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def render_steps():
    out = [
        "Every step also takes "
        + ", ".join(
            f"`{name}` ({spec_['type']}, default {default_text(spec_['default'])}: {spec_['doc']})"
            for name, spec_ in COMMON_PARAMS.items()
        )
        + ".",
        "",
    ]
    for kind, entry in STEPS.items():
        writes = " Counts as a writing step (publisher_tps, publisher_rows_per_second)." if entry.get("writes") else ""
        out += [f"#### `{kind}`", "", entry["doc"] + writes, ""]
        params = entry.get("params") or {}
        if not params:
            out += ["No parameters.", ""]
            continue
        out += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        for name, param in params.items():
            out.append(f"| `{name}` | {param['type']} | {default_text(param['default'])} | {cell(param['doc'])} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_catalog():
    out = [
        "| measure | per node | unit | better | what | exact source |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in CATALOG.items():
        out.append(
            f"| `{name}` | {'yes' if entry['per_node'] else 'no'} | {entry['unit']} | {entry['better']} | "
            f"{cell(entry['description'])} | {cell(entry['source'])} |"
        )
    return "\n".join(out) + "\n"


GENERATED = {"steps": render_steps, "catalog": render_catalog}


def section(text, name):
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"README has no {name} section"
    return match


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_tables_are_current(name):
    text = README.read_text()
    wanted = GENERATED[name]()
    found = section(text, name)
    if found.group(1) != wanted and os.environ.get("UPDATE_EXPERIMENT_README"):
        README.write_text(text[: found.start(1)] + wanted + text[found.end(1) :])
        return
    assert found.group(1) == wanted, (
        f"experiments/README.md's {name} table is out of date: UPDATE_EXPERIMENT_README=1 .venv/bin/python -m pytest "
        "tests/unit/test_experiment_readme.py"
    )


def test_every_key_and_option_is_documented():
    text = README.read_text()
    for table in (spec.TOP_KEYS, spec.VARIANT_KEYS):
        for key in table:
            assert f"| `{key}` |" in text, key
    for key in (*spec.REQUIRES_KEYS, *spec.LIMIT_KEYS, *spec.BASELINES):
        assert f"`{key}`" in text, key
    for option, (major, _values) in spec.SUBSCRIPTION_OPTIONS.items():
        assert f"| `{option}` | {major} |" in text, option
    for option, (major, _values) in spec.PUBLICATION_OPTIONS.items():
        assert f"| `{option}` | {major} |" in text, option
    assert f"default {spec.DEFAULT_REPEAT}" in text
