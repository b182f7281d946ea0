#!/usr/bin/env bash
# Starts a private single-node Slurm cluster (Debian's slurmctld, slurmd, slurm-client, munge)
# whose configuration, keys, state, spool and logs all live in one folder, for the cluster tests
# and for trying docs/scale-out.md ("Slurm") on one machine. No systemd: the three daemons run in
# the background and record their PIDs; scripts/slurm/down.sh stops them.
#
#   eval "$(scripts/slurm/up.sh [DIR])"    # prints `export SLURM_CONF=DIR/slurm.conf`
#   sbatch --array=0-3 --wrap '...'; squeue; …
#   scripts/slurm/down.sh DIR
#
# DIR defaults to a new temp folder. Ports default to 46817/46818 (CMD_SLURM_PORTS="ctld,slurmd"
# to change them) so a cluster the user already runs on 6817/6818 is never touched. Logs go to
# stderr only on failure; stdout is the export line alone.
set -euo pipefail

for tool in munged slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "up.sh: $tool not found (apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge)" >&2
    exit 2
  }
done

dir="${1:-$(mktemp -d "${TMPDIR:-/tmp}/cmd-slurm-XXXXXX")}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
IFS=, read -r ctld_port slurmd_port <<<"${CMD_SLURM_PORTS:-46817,46818}"

mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
# munged refuses a socket folder that others can write to, and clients must be able to reach it.
chmod 755 "$dir" "$dir/munge"
chmod 700 "$dir/state" "$dir/spool"

key="$dir/munge/munge.key"
[ -f "$key" ] || { head -c 1024 /dev/urandom >"$key"; chmod 400 "$key"; }
socket="$dir/munge/munge.socket.2"
munged --force --key-file="$key" --socket="$socket" --pid-file="$dir/run/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

# The node's CPUs, sockets, cores and memory as slurmd itself detects them: a node configured
# bigger than the machine would be drained.
node_line="$(slurmd -C | head -n 1)"
node_name="$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")"
: >"$dir/plugstack.conf"
cat >"$dir/slurm.conf" <<CONF
ClusterName=cmdtest
SlurmctldHost=$node_name(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# UpTime=… from slurmd -C is not a configuration key.
sed -i 's/ UpTime=[^ ]*//' "$dir/slurm.conf"

export SLURM_CONF="$dir/slurm.conf"
fail() {
  echo "up.sh: $1 (logs in $dir/log)" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  "$(dirname "$0")/down.sh" "$dir" >&2 || true
  exit 2
}
slurmctld -c || fail "slurmctld did not start"
slurmd -N "$node_name" || fail "slurmd did not start"

# Ready when the node reports idle (sinfo answers only once slurmctld listens).
for _ in $(seq 1 120); do
  state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)"
  [ "$state" = idle ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
  # A daemon that exited (typically: its port is taken by another cluster) will not come back.
  for daemon in slurmctld slurmd; do
    pid="$(cat "$dir/run/$daemon.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null &&
      fail "$daemon exited (port $ctld_port or $slurmd_port in use? set CMD_SLURM_PORTS=ctld,slurmd)"
  done
  sleep 0.5
done
fail "the node is not idle after 60 s (state: ${state:-none})"
