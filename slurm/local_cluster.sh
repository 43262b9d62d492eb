#!/usr/bin/env bash
# A one-node Slurm on this machine, for tests and smoke runs: munged + slurmctld + slurmd.
#
#   sudo slurm/local_cluster.sh start     # installs slurm-wlm + munge (apt) if missing, starts, waits idle
#   sudo slurm/local_cluster.sh status    # sinfo + squeue; exit 0 when the node answers
#   sudo slurm/local_cluster.sh stop      # stops slurmd, slurmctld, munged (only the ones it started)
#
# Environment:
#   SLURM_LOCAL_PARTITION  partition name (default: debug; src/distill_lab/conf/launcher/slurm.yaml uses $SLURM_PARTITION,debug)
#   SLURM_LOCAL_STATE      state folder for pid files, logs, spool (default: /var/tmp/distill_lab_slurm)
#
# Needs root (slurmd runs jobs as their users; munged needs its key owned by `munge`). Tested with
# Debian 12's slurm-wlm 22.05 (the configuration this writes is below: munge, one node, one partition).
set -euo pipefail

PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
STATE="${SLURM_LOCAL_STATE:-/var/tmp/distill_lab_slurm}"
CONF_DIR=/etc/slurm
HOST="$(hostname -s)"

die() { echo "local_cluster.sh: $*" >&2; exit 1; }
log() { echo "local_cluster.sh: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (slurmd and munged need it)"; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "slurm-wlm/munge are missing and apt-get is unavailable"
  log "installing slurm-wlm and munge with apt-get (once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2 || die "apt-get install slurm-wlm munge failed"
}

write_munge_key() {
  install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
}

write_slurm_conf() {
  local cpus mem_mb
  # every CPU the node has: plain nproc would print OMP_NUM_THREADS when that is set (a 1-CPU node then
  # never runs a 2-task job), and slurmd compares this line with the hardware it finds
  cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
  mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by distill_lab slurm/local_cluster.sh: a one-node cluster for tests.
ClusterName=distill_lab_local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
# a requeued job waits cred_expire+1 s before it may start again (default 120): short for tests
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
# requeued jobs (SIGUSR1 -> scontrol requeue) start again without a hold
JobRequeue=1
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  need_root
  install_packages
  write_munge_key
  write_slurm_conf
  if ! pid_alive /run/munge/munged.pid; then
    # as the munge user, like Debian's service; --force tolerates log/dir ownership warnings
    runuser -u munge -- munged --force >&2 || die "munged failed to start; see /var/log/munge/munged.log"
    touch "$STATE/munged.started"
  fi
  munge -n | unmunge >/dev/null || die "munge round trip failed (key or socket)"
  if ! pid_alive "$STATE/slurmctld.pid"; then
    slurmctld -c -i >&2 || die "slurmctld failed; see $STATE/log/slurmctld.log"
  fi
  if ! pid_alive "$STATE/slurmd.pid"; then
    slurmd -c >&2 || die "slurmd failed; see $STATE/log/slurmd.log"
  fi
  local i state
  for i in $(seq 1 60); do
    state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)"
    case "$state" in
      idle*|mix*|alloc*) log "node $HOST is $state in partition $PARTITION"; return 0 ;;
      down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node did not become idle in 60 s (last state: ${state:-none}); logs in $STATE/log"
}

stop_pidfile() {
  # the pid is read once: slurmd removes its pid file as soon as it starts shutting down
  local name="$1" file="$STATE/$1.pid" pid i
  [ -s "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped $name ($pid)"
  fi
  rm -f "$file"
}

drain_jobs() {
  # cancel every job and wait until the steps have reported back: a step still running when
  # slurmctld stops hangs on retrying its completion message
  local i
  scancel --quiet --partition="$PARTITION" 2>/dev/null || true
  for i in $(seq 1 60); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && [ -z "$(pgrep -x slurmstepd || true)" ] && return 0
    sleep 0.5
  done
  log "jobs still running after 30 s; stopping anyway"
  local pid
  for pid in $(pgrep -x slurmstepd || true); do kill -9 "$pid" 2>/dev/null || true; done
}

stop() {
  need_root
  if [ -s "$STATE/slurmctld.pid" ]; then drain_jobs; fi
  stop_pidfile slurmd
  stop_pidfile slurmctld
  # munged only if this script started it (a system-wide munge service is left alone)
  if [ -e "$STATE/munged.started" ]; then
    runuser -u munge -- munged --stop >/dev/null 2>&1 || true
    rm -f "$STATE/munged.started"
    log "stopped munged"
  fi
}

status() {
  sinfo -N -o '%N %P %t %c %m' && squeue
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
