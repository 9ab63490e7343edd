"""ansible_plugins/strategy/mitogen_linear.py: Mitogen's strategy when the package is there, else ansible-core's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy

SHIM = Path(__file__).resolve().parents[2] / "ansible_plugins" / "strategy" / "mitogen_linear.py"


def load_shim(name: str):
    spec = importlib.util.spec_from_file_location(name, SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mitogen_strategy_when_the_package_is_installed() -> None:
    pytest.importorskip("ansible_mitogen", reason="mitogen is not installed in this Python")
    from ansible_mitogen.strategy import StrategyMixin

    strategy = load_shim("shim_with_mitogen").StrategyModule
    assert issubclass(strategy, StrategyMixin)
    assert issubclass(strategy, LinearStrategy)


def test_linear_strategy_and_a_warning_without_the_package(monkeypatch, capsys) -> None:
    # None in sys.modules makes the import fail as if the package were missing.
    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)
    monkeypatch.setitem(sys.modules, "ansible_mitogen.plugins.strategy.mitogen_linear", None)
    strategy = load_shim("shim_without_mitogen").StrategyModule
    assert strategy is LinearStrategy
    captured = capsys.readouterr()
    assert "Mitogen is not importable" in captured.out + captured.err
    assert "ANSIBLE_STRATEGY=linear" in captured.out + captured.err
