#!/usr/bin/env bash
# A single-node SLURM cluster (with accounting through slurmdbd + MariaDB) for the SLURM test, from
# Debian packages, with the daemons started directly (no systemd) and stopped by their pid files.
#
#   tests/cluster/slurm.sh up      install the packages if missing, write the configs, start what is not
#                                  running (munged -> mariadbd -> slurmdbd -> sacctmgr add cluster ->
#                                  slurmctld -> slurmd), wait until the node is idle; idempotent
#   tests/cluster/slurm.sh down    stop every daemon that `up` started (reverse order, by pid file)
#   tests/cluster/slurm.sh env     print `export SLURM_CONF=...` for using sbatch/squeue/sacct by hand
#
# Everything lives under $LPBENCH_SLURM_DIR (default /tmp/lpbench-slurm): configs, spool, logs, pid files,
# the database. Clients find the cluster through SLURM_CONF, and through /etc/slurm/slurm.conf, a symlink to
# ours: the executor plugin's job step (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes every SLURM_*
# variable but the job's identity before its nested `srun`, SLURM_CONF included, so srun inside a job only
# finds the default path. A slurm.conf there that is not ours is never replaced (exit 3). The ports are not
# SLURM's defaults, so a real SLURM or MariaDB on the same machine is left alone.
# Needs root (daemons, apt-get). Exit code 3 means "cannot be started here" (not root, no apt-get, packages
# not installable); the test skips on it and fails on any other error.
set -euo pipefail

DIR=${LPBENCH_SLURM_DIR:-/tmp/lpbench-slurm}
CLUSTER=${LPBENCH_SLURM_CLUSTER:-lpbench}
PARTITION=${LPBENCH_SLURM_PARTITION:-debug}
CTLD_PORT=${LPBENCH_SLURM_PORT_BASE:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
DBD_PORT=$((CTLD_PORT + 2))
DB_PORT=$((CTLD_PORT + 3))
DB_PASS=lpbench-slurm-test  # a throw-away database reachable only on 127.0.0.1
HOST=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server)

CONF=$DIR/etc/slurm.conf
RUN=$DIR/run
LOG=$DIR/log
export SLURM_CONF=$CONF

say() { echo "slurm.sh: $*" >&2; }
cannot() { say "cannot start the cluster here: $*"; exit 3; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running, and is the daemon (a pid file left
    # from an earlier boot may name a pid now reused by something else)
    local pid
    [[ -s $1 ]] || return 1
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) =~ ^(munged|mariadbd|mysqld|slurm) ]]
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds
    local limit=$1 what=$2 t=0
    shift 2
    until "$@" >/dev/null 2>&1; do
        sleep 0.5
        t=$((t + 1))
        if ((t > limit * 2)); then
            say "timed out after ${limit}s waiting for $what; logs in $LOG:"
            tail -n 20 "$LOG"/*.log >&2 || true
            exit 1
        fi
    done
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || cannot "packages missing (${missing[*]}) and no apt-get"
    say "installing ${missing[*]}"
    # RUNLEVEL=1: the packages' init scripts must not start their own daemons (we start ours below)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
            apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$DIR/apt.log" 2>&1; then
        tail -n 20 "$DIR/apt.log" >&2
        cannot "apt-get install failed (log: $DIR/apt.log)"
    fi
}

write_configs() {
    local cpus mem
    cpus=$(nproc)
    # declare a little less memory than the machine has: slurmd drains a node that has less than declared
    mem=$(awk '/^MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$DIR/etc" "$DIR/spool/ctld" "$DIR/spool/d" "$RUN" "$LOG" "$DIR/jobs"
    cat >"$CONF.new" <<EOF
# Written by tests/cluster/slurm.sh: one node (this machine, 127.0.0.1), accounting through slurmdbd.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in a container without systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# finished jobs stay visible to squeue for 5 min (the fallback status command)
MinJobAge=300
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # slurmdbd.conf sits beside slurm.conf (found through SLURM_CONF), owned by SlurmUser, mode 600.
    # DbdHost must be this host's name: slurmdbd compares it with gethostname() and refuses an address.
    cat >"$DIR/etc/slurmdbd.conf.new" <<EOF
# Written by tests/cluster/slurm.sh
AuthType=auth/munge
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf.new"
    mv "$CONF.new" "$CONF"
    mv "$DIR/etc/slurmdbd.conf.new" "$DIR/etc/slurmdbd.conf"
    mkdir -p /etc/slurm
    ln -sfn "$CONF" /etc/slurm/slurm.conf
}

check_default_conf() {  # the default slurm.conf is absent or ours (a symlink to $CONF)
    if [[ -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]] &&
        [[ $(readlink /etc/slurm/slurm.conf) != "$CONF" ]]; then
        cannot "/etc/slurm/slurm.conf exists and is not this test cluster's; not replacing a real SLURM's config"
    fi
}

start_munge() {
    # reuse a munged that already answers (e.g. the machine's own); else start one
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    [[ -s /etc/munge/munge.key ]] || {
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || /usr/sbin/mungekey --create
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    }
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    echo /run/munge/munged.pid >"$RUN/munged.pidfile"  # so `down` stops only a munged that we started
    wait_for 20 munged sh -c 'munge -n </dev/null | unmunge'
}

db() { mariadb --no-defaults --protocol=socket -S "$RUN/mysqld.sock" -u root "$@"; }

start_mariadb() {
    if alive "$RUN/mysqld.pid"; then return 0; fi
    if [[ ! -d $DIR/mysql/mysql ]]; then
        say "initialising the accounting database"
        rm -rf "$DIR/mysql"
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
            { tail -n 20 "$LOG/mariadb-install.log" >&2; exit 1; }
    fi
    say "starting mariadbd"
    nohup mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$RUN/mysqld.sock" \
        --pid-file="$RUN/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=48M \
        --innodb-use-native-aio=0 --skip-name-resolve </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadbd db -e "SELECT 1"
    db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
           CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
           FLUSH PRIVILEGES;"
}

start_slurmdbd() {
    if ! alive "$RUN/slurmdbd.pid"; then
        say "starting slurmdbd"
        slurmdbd
    fi
    wait_for 60 slurmdbd sacctmgr -n show cluster
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

node_ready() { sinfo -h -n "$HOST" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start_slurm() {
    if ! alive "$RUN/slurmctld.pid"; then
        say "starting slurmctld"
        slurmctld
    fi
    wait_for 60 slurmctld scontrol ping
    if ! alive "$RUN/slurmd.pid"; then
        say "starting slurmd"
        slurmd
    fi
    wait_for 60 "node $HOST to be idle" node_ready
}

stop() {  # stop NAME PIDFILE
    local pid
    alive "$2" || return 0
    pid=$(cat "$2")
    say "stopping $1 ($pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    say "$1 did not stop; killing it"
    kill -9 "$pid" 2>/dev/null || true
}

up() {
    [[ $(id -u) == 0 ]] || cannot "needs root (daemons, apt-get), running as $(id -un)"
    mkdir -p "$DIR"
    check_default_conf
    install_packages
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurm
    say "up: cluster '$CLUSTER', partition '$PARTITION', node $HOST; use: export SLURM_CONF=$CONF"
}

down() {
    # jobs first, so that no job step outlives slurmd
    if alive "$RUN/slurmctld.pid"; then scancel --full -u "$(id -un)" 2>/dev/null || true; sleep 1; fi
    stop slurmd "$RUN/slurmd.pid"
    stop slurmctld "$RUN/slurmctld.pid"
    stop slurmdbd "$RUN/slurmdbd.pid"
    stop mariadbd "$RUN/mysqld.pid"
    if [[ -s $RUN/munged.pidfile ]]; then
        stop munged "$(cat "$RUN/munged.pidfile")"
        rm -f "$RUN/munged.pidfile"
    fi
    if [[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) == "$CONF" ]]; then rm -f /etc/slurm/slurm.conf; fi
}

case ${1:-} in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
