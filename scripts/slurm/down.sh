#!/usr/bin/env bash
# Stops a cluster started by scripts/slurm/up.sh DIR: cancels every job first (stopping the
# daemons alone leaves running job steps alive), then ends slurmd, slurmctld and munged by the
# PIDs they recorded under DIR/run, and leaves DIR (logs) in place. Safe to run twice.
set -uo pipefail
dir="${1:?usage: down.sh DIR}"
export SLURM_CONF="$dir/slurm.conf"

pid_of() { [ -f "$dir/run/$1.pid" ] && cat "$dir/run/$1.pid"; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

if alive "$(pid_of slurmctld)"; then
  jobs="$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')"
  if [ -n "${jobs// /}" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 60); do
      [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o '%A' 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

for daemon in slurmd slurmctld munged; do
  pid="$(pid_of "$daemon")"
  alive "$pid" || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
done
exit 0
