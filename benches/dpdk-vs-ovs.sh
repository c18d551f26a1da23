#!/usr/bin/env bash
# oxvs vs Open vSwitch 3.1 + DPDK 22.11 (Debian's openvswitch-switch-dpdk)
# vs dpdk-testpmd io-forward (the ceiling: no switching work at all).
#
# All three get the same DPDK virtual devices and the same captures:
#   rx: net_pcap,rx_pcap=FILE,infinite_rx=1   tx: net_null,no-rx=1
# one PMD pinned on the last CPU, the main/control thread on CPU 0.
# Cases: io (oxvs's driver alone, rx -> tx with no datapath, vs testpmd on
# the same traffic), 1flow, 10k, 100k (rule in_port+udp), 100k-inport (rule in_port
# only: OVS's simple-match table), 100k-20masks (20 rules with different
# source prefixes), setup (50k new flows, each its own megaflow; OVS with
# upcall/disable-megaflows; oxvs with a fixed translation: the datapath's
# own cost of a setup), setup-ofproto (the same with ofproto-lite
# translating every upcall, as the daemon does and as OVS always does: the
# like-for-like figure against OVS's).
# Each run does every case for every system (systems interleaved run by
# run); a run's figure is the median of per-second samples; the table is
# the median of the runs. Cycles/packet = TSC Hz / packets per second of
# the one busy PMD core (the same formula for all three).
#
# Usage (root): benches/dpdk-vs-ovs.sh
#   BENCH_RUNS=3 BENCH_SECONDS=5 BENCH_CASES=1flow,10k,... BENCH_HUGEPAGES=1024
#   BENCH_SYSTEMS=oxvs,ovs,testpmd
#   OXVS_BENCH_BIN=PATH   (a netdev-dpdk `dpdk` bench binary built earlier;
#                          default: build the tree's with cargo)
#   BENCH_OVS_SMC=1       (also run OVS with other_config:smc-enable=true,
#                          its SMC being off by default, and print a second
#                          table: oxvs, at its defaults, against that)
# It installs dpdk-dev and openvswitch-switch-dpdk when missing, reserves
# hugepages (falls back to --no-huge), starts its own ovsdb-server and
# ovs-vswitchd-dpdk in a temp dir, and on exit (also on error or ^C) stops
# them, puts nr_hugepages back, unmounts and removes everything.
set -euo pipefail

RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
CASES=${BENCH_CASES:-io,1flow,10k,100k,100k-inport,100k-20masks,setup,setup-ofproto}
SYSTEMS=${BENCH_SYSTEMS:-oxvs,ovs,testpmd}
OVS_SMC=${BENCH_OVS_SMC:-0}
NHUGE=${BENCH_HUGEPAGES:-1024}
NCPU=$(nproc)
PMD_CORE=$((NCPU - 1))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/oxvs-dpdk-bench.XXXXXX)
HP=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
OLD_HUGE=$(cat "$HP" 2>/dev/null || echo 0)
HUGE_MOUNTED=0
RUNTIME_DIR_EXISTED=0
[ -e /var/run/dpdk ] && RUNTIME_DIR_EXISTED=1
TESTPMD_PID=

log() { echo "[bench] $*" >&2; }

cleanup() {
    set +e
    [ -n "$TESTPMD_PID" ] && kill -INT "$TESTPMD_PID" 2>/dev/null && wait "$TESTPMD_PID" 2>/dev/null
    for p in vswitchd ovsdb; do
        if [ -f "$WORK/$p.pid" ]; then
            pid=$(cat "$WORK/$p.pid")
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null
        fi
    done
    if [ "$HUGE_MOUNTED" = 1 ]; then umount "$WORK/huge"; fi
    echo "$OLD_HUGE" > "$HP" 2>/dev/null
    # EAL makes its runtime dir even with --in-memory/--no-shconf.
    [ "$RUNTIME_DIR_EXISTED" = 0 ] && rm -rf /var/run/dpdk
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (hugepages, OVS)" >&2; exit 1; }
need=()
command -v dpdk-testpmd >/dev/null || need+=(dpdk-dev)
[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] || need+=(openvswitch-switch-dpdk)
pkg-config --exists libdpdk || need+=(libdpdk-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
    # The package may have started the distribution's own daemons.
    systemctl stop openvswitch-switch 2>/dev/null || true
fi

# Hugepages for everyone, or --no-huge for everyone.
mkdir -p "$WORK/huge" "$WORK/pcap"
echo $((OLD_HUGE + NHUGE)) > "$HP" 2>/dev/null || true
if [ "$(cat "$HP")" -ge $((OLD_HUGE + NHUGE)) ] && mount -t hugetlbfs -o pagesize=2M nodev "$WORK/huge"; then
    HUGE_MOUNTED=1
    EAL_MEM="--huge-dir $WORK/huge --socket-mem 1024 --in-memory"
    OVS_EXTRA="--huge-dir $WORK/huge --in-memory --no-pci --no-telemetry"
    OXVS_ENV="DPDK_BENCH_HUGE_DIR=$WORK/huge"
    log "hugepages: $NHUGE x 2 MiB at $WORK/huge"
else
    echo "$OLD_HUGE" > "$HP" 2>/dev/null || true
    EAL_MEM="--no-huge -m 2048 --no-shconf"
    OVS_EXTRA="--no-huge -m 2048 --no-pci --no-telemetry"
    OXVS_ENV=
    log "no hugepages: --no-huge for all systems"
fi

if [ -n "${OXVS_BENCH_BIN:-}" ]; then
    # A bench binary built earlier (to compare two builds of oxvs).
    BIN=$OXVS_BENCH_BIN
    log "oxvs bench: $BIN"
else
    log "building the oxvs bench"
    (cd "$ROOT" && cargo bench -p netdev-dpdk --bench dpdk --no-run -q >&2)
    BIN=$(cd "$ROOT" && cargo bench -p netdev-dpdk --bench dpdk --no-run --message-format=json -q 2>/dev/null \
          | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="dpdk": print(m["executable"])' | tail -1)
fi

# The captures (written by the oxvs bench on its first run; shared).
file_of() { case $1 in 100k-inport) echo 100k ;; io) echo 1flow ;; setup-ofproto) echo setup ;; *) echo "$1" ;; esac; }
flows_of() { case $1 in 1flow) echo 1 ;; 10k) echo 10000 ;; setup|setup-ofproto) echo 50000 ;; *) echo 100000 ;; esac; }

declare -A RES   # RES[system,case,run] = "mpps cycles"  (setup: "flows/s seconds")
TSC_HZ=

run_oxvs() { # run
    local out
    out=$(env $OXVS_ENV DPDK_BENCH_PCAP_DIR="$WORK/pcap" DPDK_BENCH_SECONDS="$SECS" \
          DPDK_BENCH_LCORE="$PMD_CORE" DPDK_BENCH_CASES="$CASES" "$BIN" 2>"$WORK/oxvs.err")
    TSC_HZ=$(grep -o 'TSC [0-9.]* GHz' "$WORK/oxvs.err" | awk '{printf "%.0f", $2 * 1e9}')
    while read -r sys c a b; do RES[oxvs,$c,$1]="$a $b"; done <<<"$out"
}

# ---- Open vSwitch ----
VSCTL="ovs-vsctl --db=unix:$WORK/db.sock --timeout=60"
APPCTL="ovs-appctl -t $WORK/vswitchd.ctl"
ovs_start() {
    export OVS_RUNDIR=$WORK OVS_LOGDIR=$WORK OVS_DBDIR=$WORK
    ovsdb-tool create "$WORK/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$WORK/conf.db" --remote="punix:$WORK/db.sock" --unixctl="$WORK/ovsdb.ctl" \
        --pidfile="$WORK/ovsdb.pid" --detach --log-file="$WORK/ovsdb.log"
    $VSCTL --no-wait init
    $VSCTL --no-wait set Open_vSwitch . other_config:dpdk-init=true \
        other_config:dpdk-lcore-mask=0x1 \
        other_config:pmd-cpu-mask="$(printf '0x%x' $((1 << PMD_CORE)))" \
        other_config:dpdk-extra="$OVS_EXTRA"
    /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk "unix:$WORK/db.sock" \
        --unixctl="$WORK/vswitchd.ctl" --pidfile="$WORK/vswitchd.pid" --detach \
        --log-file="$WORK/vswitchd.log" -vconsole:off
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev
}

ovs_flows() { # case
    ovs-ofctl del-flows br0
    case $1 in
        100k-inport) ovs-ofctl add-flow br0 "in_port=1,actions=output:2" ;;
        100k-20masks)
            for r in $(seq 0 19); do
                ovs-ofctl add-flow br0 "priority=$((100 + r)),in_port=1,udp,tp_dst=$r,nw_src=10.0.0.0/$((12 + r)),actions=output:2"
            done
            ovs-ofctl add-flow br0 "priority=1,in_port=1,udp,actions=output:2" ;;
        *) ovs-ofctl add-flow br0 "in_port=1,udp,actions=output:2" ;;
    esac
}

ovs_ports() { # case run
    local f="$WORK/pcap/$(file_of "$1").pcap" tag="${1//-/_}_$2"
    $VSCTL add-port br0 p2 -- set Interface p2 type=dpdk ofport_request=2 \
        options:dpdk-devargs="net_null_$tag,no-rx=1"
    $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk ofport_request=1 \
        options:dpdk-devargs="net_pcap_$tag,rx_pcap=$f,infinite_rx=1"
}

ovs_unports() { $VSCTL --if-exists del-port br0 p1 -- --if-exists del-port br0 p2; }

ovs_received() { $APPCTL dpif-netdev/pmd-stats-show | awk '/packets received:/ {s += $3} END {print s + 0}'; }

run_ovs() { # run [system: ovs (OVS's defaults) or ovssmc (its SMC on)]
    local sys=${2:-ovs}
    for c in ${CASES//,/ }; do
        [ "$c" = io ] && continue      # oxvs's driver alone: no OVS equivalent
        # OVS's setup always translates: one figure serves both setup rows.
        [ "$c" = setup-ofproto ] && [[ ,$CASES, == *,setup,* ]] && continue
        [ "$sys" = ovssmc ] && [[ $c == setup* ]] && continue   # no lookup to cache
        ovs_flows "$c"
        if [[ $c == setup* ]]; then
            $APPCTL upcall/disable-megaflows >/dev/null
            $APPCTL dpctl/del-flows >/dev/null 2>&1 || true
            local t0 t1 n=0
            t0=$(date +%s.%N)
            ovs_ports "$c" "$1"
            while [ "$n" -lt 50000 ]; do
                n=$($APPCTL upcall/show | grep -o 'current [0-9]*' | head -1 | awk '{print $2}')
                n=${n:-0}
                (( $(echo "$(date +%s.%N) - $t0 > 60" | bc) )) && break
                sleep 0.05
            done
            t1=$(date +%s.%N)
            RES[ovs,setup,$1]="$(echo "$n / ($t1 - $t0)" | bc) $(echo "$t1 - $t0" | bc)"
            ovs_unports
            $APPCTL upcall/enable-megaflows >/dev/null
            continue
        fi
        ovs_ports "$c" "$1"
        sleep 2
        local samples=() p0 p1 t0 t1
        for _ in $(seq "$SECS"); do
            p0=$(ovs_received); t0=$(date +%s.%N)
            sleep 1
            p1=$(ovs_received); t1=$(date +%s.%N)
            samples+=("$(echo "($p1 - $p0) / ($t1 - $t0)" | bc -l)")
        done
        local pps
        pps=$(printf '%s\n' "${samples[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        RES[$sys,$c,$1]="$(echo "$pps / 1000000" | bc -l) $(echo "$TSC_HZ / $pps" | bc -l)"
        ovs_unports
    done
}

run_testpmd() { # run
    for c in ${CASES//,/ }; do
        [ "$c" = setup ] || [ "$c" = setup-ofproto ] && continue
        [ "$c" = 100k-inport ] && continue    # same traffic as 100k: no rules
        [ "$c" = io ] && continue             # same traffic as 1flow
        local f="$WORK/pcap/$(file_of "$c").pcap"
        stdbuf -oL dpdk-testpmd -l "0,$PMD_CORE" $EAL_MEM --no-pci --no-telemetry --log-level=4 \
            --vdev "net_pcap0,rx_pcap=$f,infinite_rx=1" --vdev "net_null0,no-rx=1" -- \
            --forward-mode=io --nb-cores=1 --total-num-mbufs=262144 --stats-period=1 \
            >"$WORK/testpmd.out" 2>&1 &
        TESTPMD_PID=$!
        # Wait for forwarding, then take SECS per-second samples.
        for _ in $(seq 600); do
            [ "$(grep -ac 'Rx-pps' "$WORK/testpmd.out")" -ge $((2 * (SECS + 2))) ] && break
            kill -0 "$TESTPMD_PID" 2>/dev/null || break
            sleep 0.1
        done
        # testpmd sometimes misses SIGINT while printing stats: escalate.
        kill -INT "$TESTPMD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$TESTPMD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$TESTPMD_PID" 2>/dev/null && sleep 1 || true
        kill -KILL "$TESTPMD_PID" 2>/dev/null || true
        wait "$TESTPMD_PID" 2>/dev/null || true
        TESTPMD_PID=
        # Port 0 is the net_pcap port: its Rx-pps, skipping the first two.
        local pps
        pps=$(grep -a -A8 'NIC statistics for port 0' "$WORK/testpmd.out" | awk '/Rx-pps/ {print $2}' \
              | tail -n +3 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        pps=${pps:-0}
        if [ "$pps" = 0 ]; then RES[testpmd,$c,$1]="0 0"; continue; fi
        RES[testpmd,$c,$1]="$(echo "$pps / 1000000" | bc -l) $(echo "$TSC_HZ / $pps" | bc -l)"
    done
}

for run in $(seq "$RUNS"); do
    log "run $run/$RUNS: oxvs"
    run_oxvs "$run"
    if [[ ,$SYSTEMS, == *,ovs,* ]]; then
        [ -f "$WORK/vswitchd.pid" ] || { log "starting OVS"; ovs_start; }
        log "run $run/$RUNS: ovs"
        run_ovs "$run"
        if [ "$OVS_SMC" = 1 ]; then
            log "run $run/$RUNS: ovs with smc-enable=true"
            $VSCTL set Open_vSwitch . other_config:smc-enable=true
            run_ovs "$run" ovssmc
            $VSCTL set Open_vSwitch . other_config:smc-enable=false
        fi
    fi
    if [[ ,$SYSTEMS, == *,testpmd,* ]]; then
        log "run $run/$RUNS: testpmd"
        run_testpmd "$run"
    fi
done

# median over runs of field $3 (1 or 2)
med() { # system case field
    local v=()
    for run in $(seq "$RUNS"); do
        local r=${RES[$1,$2,$run]:-}
        [ -n "$r" ] && v+=("$(echo "$r" | awk -v f="$3" '{print $f}')")
    done
    [ ${#v[@]} -eq 0 ] && { echo "-"; return; }
    printf '%s\n' "${v[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
ratio() { if [ "$1" = - ] || [ "$2" = - ] || [ "$(echo "$2 == 0" | bc)" = 1 ]; then echo -; else printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi; }
fmt() { if [ "$1" = - ]; then echo -; else printf "%.${2}f" "$1"; fi; }

echo
echo "oxvs vs OVS $(ovs-vswitchd --version 2>/dev/null | awk 'NR==1 {print $NF}') + DPDK $(pkg-config --modversion libdpdk) vs dpdk-testpmd; one PMD on CPU $PMD_CORE; 64-byte UDP; net_pcap -> net_null; $(nproc) CPUs $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); TSC $(echo "$TSC_HZ / 1000000000" | bc -l | cut -c1-4) GHz; median of $RUNS runs x $SECS s"
printf '| %-13s | %10s | %9s | %10s | %9s | %12s | %9s | %8s | %12s |\n' case "oxvs Mpps" "oxvs c/p" "OVS Mpps" "OVS c/p" "testpmd Mpps" "tpmd c/p" "oxvs/OVS" "oxvs/testpmd"
printf '|%s|\n' "---------------|------------|-----------|------------|-----------|--------------|-----------|----------|--------------"
for c in ${CASES//,/ }; do
    if [ "$c" = setup ] || [ "$c" = setup-ofproto ]; then
        # OVS translates every upcall in both rows: its one setup figure.
        o=$(med oxvs "$c" 1); os=$(med oxvs "$c" 2); v=$(med ovs setup 1); vs=$(med ovs setup 2)
        printf '| %-13s | %s new flows/s, 50k in %s s (oxvs) | %s new flows/s, 50k in %s s (OVS) | oxvs/OVS %s |\n' \
            "$c" "$(fmt "$o" 0)" "$(fmt "$os" 3)" "$(fmt "$v" 0)" "$(fmt "$vs" 2)" "$(ratio "$o" "$v")"
        continue
    fi
    tc=$c; [ "$c" = 100k-inport ] && tc=100k; [ "$c" = io ] && tc=1flow
    o=$(med oxvs "$c" 1); oc=$(med oxvs "$c" 2)
    v=$(med ovs "$c" 1); vc=$(med ovs "$c" 2)
    t=$(med testpmd "$tc" 1); tcc=$(med testpmd "$tc" 2)
    printf '| %-13s | %10s | %9s | %10s | %9s | %12s | %9s | %8s | %12s |\n' "$c" \
        "$(fmt "$o" 2)" "$(fmt "$oc" 0)" "$(fmt "$v" 2)" "$(fmt "$vc" 0)" "$(fmt "$t" 2)" "$(fmt "$tcc" 0)" \
        "$(ratio "$o" "$v")" "$(ratio "$o" "$t")"
done

if [ "$OVS_SMC" = 1 ] && [[ ,$SYSTEMS, == *,ovs,* ]]; then
    echo
    echo "oxvs (defaults: smc-enable=auto) vs OVS with smc-enable=true (OVS's default is false); same runs"
    printf '| %-13s | %10s | %9s | %14s | %13s | %14s |\n' case "oxvs Mpps" "oxvs c/p" "OVS+SMC Mpps" "OVS+SMC c/p" "oxvs/OVS+SMC"
    printf '|%s|\n' "---------------|------------|-----------|----------------|---------------|----------------"
    for c in ${CASES//,/ }; do
        [ "$c" = io ] || [ "$c" = setup ] || [ "$c" = setup-ofproto ] && continue
        o=$(med oxvs "$c" 1); oc=$(med oxvs "$c" 2)
        v=$(med ovssmc "$c" 1); vc=$(med ovssmc "$c" 2)
        printf '| %-13s | %10s | %9s | %14s | %13s | %14s |\n' "$c" \
            "$(fmt "$o" 2)" "$(fmt "$oc" 0)" "$(fmt "$v" 2)" "$(fmt "$vc" 0)" "$(ratio "$o" "$v")"
    done
fi
