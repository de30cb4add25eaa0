#!/usr/bin/env bash
# A real single-node SLURM on this machine, from Debian's packages, for the SLURM executor test (run as root):
#   tests/slurm/local_cluster.sh start    # install munge + slurmctld + slurmd if missing, configure, start, wait
#   tests/slurm/local_cluster.sh status   # exit 0 when the node accepts jobs (prints sinfo)
#   tests/slurm/local_cluster.sh stop     # stop the daemons (logs and the configuration stay in the state folder)
# Every command is idempotent. No systemd is assumed (CI containers have none): the daemons are started directly.
# Assumptions (test cluster only, not a model of a real one): no accounting database (`sacct` has nothing; jobs are
# checked with `squeue --states=all`, kept visible by MinJobAge, and with the job-completion log JobCompLoc), no
# cgroups (proctrack/linuxproc, task/none), no GPUs, every job runs as the submitting user.
set -euo pipefail

STATE_DIR=${QHYER_SLURM_DIR:-/var/lib/qhyer-slurm}   # spool, state and logs of this test cluster
SLURM_CONF=/etc/slurm/slurm.conf                      # where sbatch/squeue/scontrol look without $SLURM_CONF
MARKER="# written by tests/slurm/local_cluster.sh"    # a slurm.conf without it is someone else's: never touched
MIN_JOB_AGE=3600   # seconds a finished job stays in squeue --states=all (the executor's status source here)
PACKAGES=(munge slurmctld slurmd slurm-client)

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return
    [[ $EUID -eq 0 ]] || die "packages ${missing[*]} are missing; run as root (or: sudo apt-get install ${missing[*]})"
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -y -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -y -q install --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
    if [[ -f $SLURM_CONF ]] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        die "$SLURM_CONF exists and was not written by this script; refusing to replace a real cluster's config"
    fi
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # Leave 1 GB to the OS and the daemons; slurmd refuses to register a node claiming more than it has.
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$STATE_DIR"/{ctld,d,log} /etc/slurm
    cat > "$SLURM_CONF.tmp" <<EOF
$MARKER
ClusterName=qhyer-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.log
MinJobAge=$MIN_JOB_AGE
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$SLURM_CONF.tmp" "$SLURM_CONF"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE_DIR/munged.ours"  # stop ends munged only when this script started it
}

node_ready() { sinfo --noheader --responding --states=idle,mixed,allocated -o %N 2>/dev/null | grep -q .; }

start() {
    install_packages
    write_config
    start_munge
    running "$STATE_DIR/slurmctld.pid" || slurmctld          # daemonizes; -c would clear state, not wanted
    running "$STATE_DIR/slurmd.pid" || slurmd
    for _ in $(seq 60); do
        node_ready && { sinfo; return; }
        sleep 1
    done
    tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
    die "the node did not come up within 60 s (logs above, in $STATE_DIR/log)"
}

stop_daemon() {  # pid file, name
    running "$1" || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
    die "$2 (pid $pid) did not stop within 30 s"
}

stop() {
    stop_daemon "$STATE_DIR/slurmd.pid" slurmd
    stop_daemon "$STATE_DIR/slurmctld.pid" slurmctld
    if [[ -f $STATE_DIR/munged.ours ]]; then
        stop_daemon /run/munge/munged.pid munged
        rm "$STATE_DIR/munged.ours"
    fi
    # Our slurm.conf moves into the state folder: left in /etc it points every SLURM client at a controller that is
    # gone, and the Snakemake SLURM plugin runs `scontrol show config` whenever Snakemake starts (~9 s timeout each).
    if [[ -f $SLURM_CONF ]] && grep -qF "$MARKER" "$SLURM_CONF"; then
        mv "$SLURM_CONF" "$STATE_DIR/slurm.conf"
    fi
}

status() {
    node_ready || die "no responding node (start it with: $0 start)"
    sinfo
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
