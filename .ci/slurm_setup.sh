#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the tests that submit real jobs:
# installs Debian's slurm-wlm and munge when missing, starts munged (as user munge) with a
# generated key, writes /etc/slurm/slurm.conf, starts slurmctld and slurmd as root, and waits
# until the node is idle. Safe to run twice: a cluster that already answers is reused.
# Never fails CI: when Slurm cannot start it prints a warning and exits 0, so those tests skip.
# tests/fixtures/slurm.ts runs this script when the tests find no cluster.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive

work=/tmp/latentforge-slurm
conf=/etc/slurm/slurm.conf
marker="# latentforge single-node test cluster"

warn() {
  echo "warning: Slurm test cluster not started: $*; the Slurm tests will skip" >&2
  for log in "$work/log/slurmctld.log" "$work/log/slurmd.log"; do
    [ -f "$log" ] && { echo "--- tail of $log" >&2; tail -n 15 "$log" >&2; }
  done
  exit 0
}

node_state() { timeout 10 sinfo -h -o %T 2>/dev/null | head -1; }

if command -v sinfo >/dev/null 2>&1; then
  case "$(node_state)" in
  idle | mixed | allocated | completing)
    echo "Slurm test cluster already up ($(node_state))"
    exit 0
    ;;
  esac
fi

[ "$(id -u)" -eq 0 ] || warn "setting it up needs root"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 ||
  ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || warn "slurm-wlm is not installed and apt-get is missing"
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
    warn "apt-get install slurm-wlm munge failed"
fi

# munge: one key shared by every daemon and client on the (single) node.
id munge >/dev/null 2>&1 || warn "the munge package did not create user munge"
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none || warn "cannot write munge.key"
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged || warn "munged did not start"
  for _ in $(seq 1 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || warn "munge credentials do not verify"
fi

# slurm.conf: never overwrite a configuration this script did not write.
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  warn "$conf exists and was not written by this setup"
fi
host=$(hostname -s)
cpus=$(nproc)
mem_total=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
# slurmd drains a node that reports less memory than configured; leave a margin.
real_memory=$((mem_total * 9 / 10))
mkdir -p "$work/state" "$work/spool" "$work/log" "$work/run" /etc/slurm
cat >"$conf.tmp" <<EOF
$marker (written by .ci/slurm_setup.sh)
ClusterName=latentforge
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.tmp" "$conf"

# A daemon left from an earlier attempt with another configuration would keep the node down.
for daemon in slurmctld slurmd; do
  pidfile="$work/run/$daemon.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null
    sleep 1
  fi
done
/usr/sbin/slurmctld -i || warn "slurmctld did not start"
/usr/sbin/slurmd || warn "slurmd did not start"

for _ in $(seq 1 60); do
  case "$(node_state)" in
  idle | mixed | allocated)
    echo "Slurm test cluster up: node $host, $cpus CPUs, partition debug"
    exit 0
    ;;
  esac
  sleep 0.5
done
warn "node $host did not become idle within 30 s (state: $(node_state))"
