#!/bin/sh
# Start dockerd detached into its own session (no service manager), unless one
# already runs. Run by the role's `direct` start method:
#   start-dockerd.sh LOG_FILE DOCKERD [DOCKERD_ARGUMENT ...]
# Prints "dockerd already running (pid N)" when there is nothing to do.
#
# A pid file counts only when it names a live process of that program: pids
# wrap (pid_max is often 32768), and after an engine was killed its pid files
# may name any other live process. dockerd would then refuse to start, or
# trust a stale containerd.pid and wait for a containerd that never answers
# (seen in CI: "failed to start containerd: timeout"). Such files are removed.
#
# The paths and program names can be changed through the environment (the
# tests do): DOCKER_PID_FILE, CONTAINERD_PID_FILE, DOCKERD_NAME, CONTAINERD_NAME.
set -eu
umask 022
log=$1
shift
pid_file=${DOCKER_PID_FILE:-/var/run/docker.pid}
containerd_pid_file=${CONTAINERD_PID_FILE:-/var/run/docker/containerd/containerd.pid}

runs() {
  [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]
}

if runs "$pid_file" "${DOCKERD_NAME:-dockerd}"; then
  echo "dockerd already running (pid $(cat "$pid_file"))"
  exit 0
fi
rm -f "$pid_file"
runs "$containerd_pid_file" "${CONTAINERD_NAME:-containerd}" || rm -f "$containerd_pid_file"

mkdir -p "$(dirname "$log")"
printf '%s starting dockerd (inventium.logical_replication.docker_engine)\n' \
  "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >>"$log"
setsid -f "$@" >>"$log" 2>&1 </dev/null
