#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the zoo's Slurm tests (and anyone who wants to
# try `arithlens zoo run --engine slurm` without a cluster):
#
#   .ci/slurm.sh up     install Debian's slurm-wlm and munge if missing, write slurm.conf for this
#                       host and its cores, start munged, slurmctld and slurmd, wait until idle
#   .ci/slurm.sh down   cancel every job and stop the three daemons
#
# Needs root (as CI runs). State and logs go to $ARITHLENS_SLURM_STATE (default /tmp/arithlens-slurm).
set -euo pipefail
state=${ARITHLENS_SLURM_STATE:-/tmp/arithlens-slurm}

up() {
    if ! command -v slurmctld >/dev/null 2>&1; then
        echo "installing Debian's slurm-wlm and munge"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
    local host cpus
    host=$(hostname -s)
    cpus=$(nproc)
    mkdir -p "$state/ctld" "$state/spool" "$state/log" /etc/slurm /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- munged
    cat >/etc/slurm/slurm.conf <<CONF
ClusterName=arithlens
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            echo "slurm: one node ($host, $cpus CPUs) idle in partition 'local'"
            return 0
        fi
        sleep 1
    done
    echo "slurm did not come up; logs in $state/log" >&2
    tail -n 20 "$state"/log/*.log >&2 || true
    return 1
}

down() {
    scancel --user=root 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
    # Wait for them to exit, so an `up` right after starts fresh daemons.
    for _ in $(seq 30); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || break
        sleep 1
    done
    echo "slurm stopped"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
