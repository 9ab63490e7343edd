"""Stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test creates an empty virtualenv for each sanity test and bootstraps
pip into it with a script fetched from a host outside the package registries
this project may use. This script does the same job from what is at hand: the
interpreter's bundled pip (ensurepip), then pip installs the exact packages
ansible-test asked for (e.g. ``pip==24.2``) from PyPI.

tests/run_all.py places it in ansible-test's cache under the name ansible-test
looks for, only when no real bootstrap script is cached there already.
"""

import subprocess
import sys

# get-pip.py options that only tell it what *not* to add; plain pip has no such flags.
GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# environment, which would hide the machine's pip configuration (index, CA) from
# the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call(
    [sys.executable, "-m", "pip", "install", "--quiet", *[a for a in sys.argv[1:] if a not in GET_PIP_ONLY_OPTIONS]]
)
