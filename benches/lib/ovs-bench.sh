# Shared by the side-by-side benchmarks (afxdp-vs-ovs.sh, tunnel-vs-ovs.sh):
# logging, stopping what they started, a private Debian OVS (its own
# database, run and log directories under $WORK, the PMD on $PMD_CORE),
# and the median/ratio arithmetic of the result table. Sourced, not run.
#
# The caller sets WORK, PMD_CORE, VSCTL and RUNS, declares the associative
# array RES[system,metric,run], and may set NICE (a command prefix for the
# switch under test).

log() { echo "[bench] $*" >&2; }

stop_pid() { # pid [signal]
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "${2:--TERM}" "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stops the ovs-vswitchd and ovsdb-server that ovs_daemons_start started.
ovs_daemons_stop() {
    for p in vswitchd ovsdb; do
        if [ -f "$WORK/$p.pid" ]; then
            local pid
            pid=$(cat "$WORK/$p.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$WORK/$p.pid"
        fi
    done
}

ovs_appctl() { ovs-appctl -t "$WORK/vswitchd.ctl" "$@"; }

# A fresh database and both OVS daemons, everything under $WORK, the PMD
# mask set to $PMD_CORE; bridges and ports are the caller's.
ovs_daemons_start() {
    export OVS_RUNDIR=$WORK OVS_LOGDIR=$WORK OVS_DBDIR=$WORK
    rm -f "$WORK/conf.db"
    ovsdb-tool create "$WORK/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$WORK/conf.db" --remote="punix:$WORK/db.sock" --unixctl="$WORK/ovsdb.ctl" \
        --pidfile="$WORK/ovsdb.pid" --detach --log-file="$WORK/ovsdb.log"
    $VSCTL --no-wait init
    $VSCTL --no-wait set Open_vSwitch . \
        other_config:pmd-cpu-mask="$(printf '0x%x' $((1 << PMD_CORE)))"
    ${NICE:-} ovs-vswitchd "unix:$WORK/db.sock" --unixctl="$WORK/vswitchd.ctl" \
        --pidfile="$WORK/vswitchd.pid" --detach --log-file="$WORK/vswitchd.log" -vconsole:off
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }

# "avg processing cycles per packet" of the busiest PMD.
cycles_per_packet() { # appctl-function
    $1 dpif-netdev/pmd-stats-show | awk -F': ' '
        /packets received/ {split($2, a, " "); rx = a[1]}
        /avg processing cycles per packet/ {split($2, a, " "); if (rx > best) {best = rx; c = a[1]}}
        END {print c + 0}'
}

med() { # system metric -> the median over the runs, or - when none
    local v=()
    for run in $(seq "$RUNS"); do
        [ -n "${RES[$1,$2,$run]:-}" ] && v+=("${RES[$1,$2,$run]}")
    done
    [ ${#v[@]} -eq 0 ] && { echo -; return; }
    printf '%s\n' "${v[@]}" | median
}

ratio() { # a b [invert] -> a/b (b/a with invert), or - when either is missing or 0
    if [ "$1" = - ] || [ "$2" = - ] || [ "$(echo "$1 == 0 || $2 == 0" | bc)" = 1 ]; then echo -; return; fi
    if [ -n "${3:-}" ]; then printf '%.2f' "$(echo "$2 / $1" | bc -l)"; else printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi
}

fmt() { if [ "$1" = - ]; then echo -; else printf "%.${2}f" "$1"; fi; }
