#!/usr/bin/env bash
# The replication status of every node (playbooks/status.yml) with an exit code
# that says how healthy it is:
#   0  healthy   no finding worse than info
#   1  warnings  the worst finding is a warning
#   2  critical  an error finding (an unreachable node included), or the status
#                could not be taken (ansible-playbook failed otherwise)
# Usage: scripts/status.sh [ansible-playbook arguments], e.g.
#   scripts/status.sh -i inventory/lab
# `make status` runs this; make reports every non-zero exit of a recipe as 2,
# so call this script where the difference between 1 and 2 matters.
# ANSIBLE_PLAYBOOK names the ansible-playbook to run (default: the checkout's .venv).
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
playbook_cmd=${ANSIBLE_PLAYBOOK:-$root/.venv/bin/ansible-playbook}

# ansible-playbook can only succeed (0) or fail: the play writes the status code
# into this file (0600, removed on exit) so that warnings can exit 1.
verdict=$(mktemp "${TMPDIR:-/tmp}/inventium-status.XXXXXX") || exit 2
trap 'rm -f "$verdict"' EXIT
extra=$(printf '{"status_verdict_file": "%s"}' "$verdict")

"$playbook_cmd" "$root/playbooks/status.yml" -e "$extra" "$@"
rc=$?
code=$(tr -d '[:space:]' < "$verdict")
if [ "$rc" -eq 0 ]; then
  case "$code" in
    0 | 1) exit "$code" ;;
    "")
      echo "status: no verdict - the summary play did not run (a --limit must include localhost)" >&2
      exit 2
      ;;
    *)
      echo "status: unexpected verdict '$code' in $verdict" >&2
      exit 2
      ;;
  esac
elif [ "$rc" -ne 2 ] || [ "$code" != 2 ]; then
  echo "status: not taken - ansible-playbook exited $rc" >&2
fi
exit 2
