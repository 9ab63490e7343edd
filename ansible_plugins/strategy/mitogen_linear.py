"""The lab's strategy: Mitogen's ``mitogen_linear`` (the ``mitogen`` package, requirements.txt), found here by name.

ansible.cfg names this directory in ``strategy_plugins`` because Mitogen's own plugin directory lies inside
the virtualenv's site-packages, whose path ansible.cfg cannot compute. Mitogen keeps one Python interpreter
per host and sends modules over it instead of starting a Python process per task: a no-op ``make lab`` took
41 s with the linear strategy and 20-21 s with this one here (issue [P2], README "Measured").

Without the package (another Python than .venv), plays run with ansible-core's own ``linear`` strategy and a
warning says why. ``ANSIBLE_STRATEGY=linear`` chooses ansible-core's strategy outright.
"""

from __future__ import annotations

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as missing:
    from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
    from ansible.utils.display import Display

    Display().warning(
        f"Mitogen is not importable ({missing}); running ansible-core's linear strategy instead "
        "(`make venv` installs it; ANSIBLE_STRATEGY=linear silences this)."
    )
    StrategyModule = LinearStrategy

__all__ = ["StrategyModule"]
