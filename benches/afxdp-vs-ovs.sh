#!/usr/bin/env bash
# oxvs vs Open vSwitch 3.1 (Debian's openvswitch-switch, its `afxdp` port
# type), side by side on the same veths, one PMD core each; and two
# ceilings: the kernel forwarding between the same two veths with no
# userspace at all (`kernel`), and our AF_XDP driver forwarding between
# them with no switch at all (`io`, the AF_XDP testpmd io-forward); see
# below.
#
# Topology (created here, removed on exit, also on error or ^C):
#   ns ax<pid>-g: eth0 10.98.0.1 ==veth== axg<pid>  \
#                                                    switch (AF_XDP ports, NORMAL)
#   ns ax<pid>-s: eth0 10.98.0.2 ==veth== axs<pid>  /
# The veths have one queue each (an AF_XDP socket binds one queue). The
# namespace ends have tx checksum offload off: AF_XDP carries no
# checksum-offload metadata, so a CHECKSUM_PARTIAL packet would leave the
# switch with a wrong checksum; TSO/GSO the kernel turns off by itself on a
# veth whose peer has a native XDP program (the same for both switches).
#
#
# The far side (why the UDP figure is comparable): a frame a switch sends
# into its veth reaches the sink namespace's eth0 either through veth's
# NAPI poll or through the per-CPU backlog (the ordinary stack). veth_xmit
# takes NAPI only when the receiver has NAPI (a native XDP program on it,
# or GRO on) and the frame is "GRO-eligible" (veth_skb_is_eligible_for_gro:
# TSO off on the sending veth, or a sock_wfree skb with UDP GRO forwarding
# on the receiver). The old sink, an AF_XDP socket behind a native XDP
# program on eth0, got a mix of both per run (OVS's frames all on the
# backlog path, oxvs's partly through NAPI in one run of the same script),
# so its count compared different paths. Now eth0 has no XDP program and
# GRO off, so veth has no NAPI for it and every frame, whichever system
# sent it, takes the backlog path; there a tcx ingress program (pktgen
# drop, crates/netdev-afxdp/src/drop_sink.rs) counts and drops it before
# the stack (no ICMP, no socket). The script checks that eth0's XDP
# counter stayed 0. The backlog runs in softirq on the sending CPU, i.e.
# inside the switch's sendto on the PMD core, the same for every system.
#
# Systems (BENCH_SYSTEMS, default oxvs,ovs,kernel,io):
#   oxvs    oxvsd, two afxdp ports, NORMAL.
#   ovs     Debian's ovs-vswitchd, two afxdp ports, NORMAL.
#   kernel  no switch process: a tc ingress filter on each switch-side veth
#           redirects everything to the other (cls_bpf match-all + mirred,
#           the two this kernel has): what the topology carries at zero
#           userspace cost. The forwarding runs in softirq on the sending
#           CPU (the generator's or iperf3's, CPU 0 with BENCH_PIN), so it
#           needs no second CPU and no cross-CPU hand-off, which a switch's
#           PMD always has. (Steering it to the PMD core with RPS was
#           tried: the generator's AF_XDP sends then mostly failed,
#           ~1k pps forwarded; see kernel-rps.) Its PMD columns read -.
#   io      no switch: examples/iofwd (crates/netdev-afxdp/src/iofwd.rs)
#           opens the two switch-side veths as afxdp ports exactly as
#           oxvsd does (its option parser and defaults: the same xdp-mode,
#           2048-entry rings, both ports on one shared UMEM, plus
#           BENCH_OXVS_OPTIONS), pinned to the PMD core, and sends every
#           burst it receives on one port out of the other through the
#           PMD's own rx/tx queue code: no flow key, no lookup, no
#           datapath, as dpdk-testpmd's io forward in dpdk-vs-ovs.sh. So
#           its row is the ceiling of an AF_XDP userspace switch on this
#           machine with our driver: the kernel's AF_XDP copy-mode path
#           (and the far side's receive, which runs inside the sendto)
#           plus the driver's own work. A switch can at best approach it:
#           io/ovs is the most any AF_XDP switch could gain over OVS here,
#           and oxvs's c/p minus io's is what oxvs's datapath costs. Its
#           PMD columns come from iofwd's own counters (busy iterations'
#           TSC over packets received, as pmd-stats-show) and perf on its
#           forwarding thread (pmd-io). It adds about a third to the run
#           time (one more system per run). Measured here (three passes of
#           BENCH_RUNS=3, load 2-8): io/ovs 0.99-1.06 for UDP and
#           1.00-1.13 for TCP, and oxvs within noise of io (0.96-1.09
#           UDP, 0.97-1.01 TCP): with veth's copy-mode AF_XDP the kernel's
#           path, not the switch, sets both figures.
#   kernel-rps  (not in the default list) the kernel system with RPS
#           steering both switch-side veths' receive work to the PMD core:
#           the CPU split a PMD switch has (data and ACKs cross to CPU 1
#           to be forwarded, and the far stack's receive runs there), at
#           zero userspace cost, though RPS adds its own cost (an IPI per
#           hand-off, the backlog's limit) that a polling PMD does not
#           pay: one run forwarded 0.13 Mpps of UDP (the backlog dropped
#           the rest) and 1.21 Gbit/s TCP, so read it as a floor of the
#           split, not a ceiling. With BENCH_GEN=afxdp its UDP column
#           reads -: with RPS that generator's sends mostly fail
#           (EAGAIN/EBUSY, ~1k pps forwarded).
#
# Figures, per system and run:
#   Mpps  64-byte UDP offered by our generator (examples/pktgen on the
#         generator namespace's eth0, BENCH_GEN below) for BENCH_SECONDS,
#         counted on the far side by the drop sink (above); median of the
#         per-second counts.
#   del%  of the frames the generator sent, the share the sink counted:
#         near 100 % means the system kept up and the generator, which
#         has one CPU, set the Mpps (then compare c/p).
#   c/p   PMD cycles per packet (pmd-stats-show "avg processing cycles per
#         packet", the same counter in both): the switch's own cost, which
#         matters here because on a 2-CPU machine the generator and the
#         sink, not the switch, may set the Mpps.
#   TCP   iperf3 single stream, BENCH_SECONDS, Gbit/s as the receiver counts.
#   sys/p system calls the PMD thread made per packet it received during
#         the UDP test (perf stat on the thread's raw_syscalls:sys_enter),
#         with the busiest calls named in the log: with AF_XDP in copy mode
#         every tx kick and fill-ring wakeup is a syscall into the kernel's
#         xmit path, so this tells the switches' kernel cost apart.
#         Needs `perf` (linux-perf); the column reads - without it.
# Each run measures the systems in turn; the table is the median of
# BENCH_RUNS runs, with each system's ratio to OVS.
#
# Usage (root): benches/afxdp-vs-ovs.sh
#   BENCH_RUNS=3 BENCH_SECONDS=5 BENCH_SYSTEMS=oxvs,ovs,kernel BENCH_XDP_MODE=native
#   BENCH_BUILD=0 (use the release binaries already in target/)
#   BENCH_OXVSD=PATH: the oxvsd binary to measure (A/B of two builds);
#   BENCH_PKTGEN=PATH: the generator and sink (examples/pktgen)
#   BENCH_IOFWD=PATH: the io forwarder (examples/iofwd)
#   BENCH_GEN=xdp-live (default): pktgen's live-frames generator
#   (crates/netdev-afxdp/src/live_gen.rs: BPF_PROG_TEST_RUN of an XDP_TX
#   program, no skb), which offers 1.3-1.4 Mpps to the switch's port, so
#   the switch sets the Mpps and drops the rest at its rx ring (the
#   delivered row reads ~25 %). BENCH_GEN=afxdp: the generator sends
#   through an AF_XDP socket on its eth0; the kernel builds an skb per
#   frame, the generator's one CPU manages ~0.45 Mpps, every system
#   forwards all of it (delivered ~100 %) and the generator, not the
#   switch, sets the Mpps. veth accepts
#   such frames only while the peer has an XDP program, so for the kernel
#   system's UDP test a native XDP_PASS program sits on the switch-side
#   end (pktgen xdp-pass): veth's NAPI then hands the frames to the stack
#   and tc as before.
#   BENCH_OXVS_OPTIONS='n_rxq_desc = 8192': more options for oxvs's two
#   afxdp ports (TOML inline-table entries). oxvs's two ports share one
#   UMEM by default (shared-umem), so what it forwards goes out without a
#   copy; 'shared-umem = false' gives each queue its own UMEM, as OVS
#   does (an A/B of the tx copy: run with BENCH_SYSTEMS=oxvs, once each)
#   BENCH_NICE=-20: the switches, the generator, the sink and iperf3 run at
#   this nice level, so that other work on the machine (compilers) takes
#   less of their cores; the same for both switches (0 to turn it off).
#   BENCH_PROFILE=1: also sample the PMD thread (perf record -e cpu-clock
#   -t TID, this VM has no hardware counters) over the UDP and the TCP
#   test, and log how its time splits between user and kernel and its
#   busiest functions; the samples cost a little, so the figures of a
#   profiled run are not the ones to quote.
#   BENCH_PIN=1: the generator, the sink and both iperf3 ends run on the
#   CPUs other than the PMD's (taskset), so that each switch's PMD has its
#   core to itself, as in a real deployment; without it they float and
#   preempt the PMD (hundreds of times a second), and its rx ring
#   overflows while it waits: that measures the scheduler (0 to let them
#   float).
#   BENCH_PREFIX=ax: names of the namespaces, veths and temp dir start
#   with it (so concurrent users of the machine can tell them apart).
# Installs openvswitch-switch and iperf3 when missing (and stops the
# distribution's own OVS service that the package starts), runs its own
# ovsdb-server and ovs-vswitchd in a temp dir, and stops everything it
# started on exit.
set -euo pipefail

# With autogroup scheduling (kernel.sched_autogroup_enabled = 1, the
# default here) nice works only inside a session's autogroup: every other
# session (a compiler, say) gets an equal share of the PMD's core whatever
# our nice, so a PMD at nice -20 still lost a third to half of its core,
# and its rx ring overflowed while it waited. So the benchmark runs in a
# session of its own whose autogroup gets BENCH_NICE, and OVS's daemon
# (which detaches into a session of its own) gets the same below.
if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] \
    && [ "${BENCH_NICE:--20}" != 0 ] && [ -z "${BENCH_IN_SESSION:-}" ]; then
    BENCH_IN_SESSION=1 setsid bash "$0" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' INT TERM
    status=0
    wait "$child" || status=$?
    # A signal interrupts the wait: wait again for the child's cleanup.
    while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
    exit "$status"
fi
# autogroup_nice PID: gives PID's autogroup the benchmark's nice level.
autogroup_nice() {
    [ -w "/proc/$1/autogroup" ] && [ "${BENCH_NICE:--20}" != 0 ] || return 0
    echo "${BENCH_NICE:--20}" >"/proc/$1/autogroup" 2>/dev/null || true
}
autogroup_nice $$

RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
SYSTEMS=${BENCH_SYSTEMS:-oxvs,ovs,kernel,io}
GEN=${BENCH_GEN:-xdp-live}
case $GEN in
    afxdp) GEN_ARGS="--type afxdp --xdp-mode native" ;;
    xdp-live) GEN_ARGS="--type xdp-live --burst 65536" ;;
    *) echo "BENCH_GEN=$GEN: afxdp or xdp-live" >&2; exit 1 ;;
esac
XDP_MODE=${BENCH_XDP_MODE:-native}
NCPU=$(nproc)
PMD_CORE=$((NCPU - 1))
NICE="nice -n ${BENCH_NICE:--20}"
# The load (generator, sink, iperf3): NICE, and off the PMD's core.
LOAD=$NICE
[ "${BENCH_PIN:-1}" = 1 ] && [ "$NCPU" -gt 1 ] && LOAD="$NICE taskset -c 0-$((NCPU - 2))"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${BENCH_PREFIX:-ax}
PROFILE=${BENCH_PROFILE:-0}
WORK=$(mktemp -d "/tmp/$PREFIX-bench.XXXXXX")
TAG=$PREFIX$$
NS_G=$TAG-g NS_S=$TAG-s
IF_G=${PREFIX}g$$ IF_S=${PREFIX}s$$
IP_G=10.98.0.1 IP_S=10.98.0.2
OXVSD_PID= SINK_PID= GEN_PID= KERNEL_FWD= IO_PID=

. "$(dirname "$0")/lib/ovs-bench.sh"

cleanup() {
    set +e
    stop_pid "$GEN_PID"; stop_pid "$SINK_PID"; stop_pid "$OXVSD_PID"; stop_pid "$IO_PID"
    stop_pid "${PERF_PID:-}"
    stop_pid "${PROF_PID:-}"; stop_pid "${FAR_PID:-}"; stop_pid "${PASS_PID:-}"
    ovs_daemons_stop
    [ -n "$KERNEL_FWD" ] && kernel_stop
    # iperf3 servers in our namespaces die with them.
    for ns in "$NS_G" "$NS_S"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    ip link del "$IF_G" 2>/dev/null
    ip link del "$IF_S" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, XDP, OVS)" >&2; exit 1; }
need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
    # The package may have started the distribution's own daemons.
    systemctl stop openvswitch-switch 2>/dev/null || true
fi

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    log "building oxvsd, oxvsctl, the generator and the io forwarder (release)"
    (cd "$ROOT" && cargo build --release -q -p oxvs --bin oxvsd -p ctl --bin oxvsctl \
        -p netdev-afxdp --example pktgen --example iofwd >&2)
fi
OXVSD=${BENCH_OXVSD:-$ROOT/target/release/oxvsd}
OXVSCTL="$ROOT/target/release/oxvsctl --socket $WORK/oxvsd.ctl"
PKTGEN=${BENCH_PKTGEN:-$ROOT/target/release/examples/pktgen}
IOFWD=${BENCH_IOFWD:-$ROOT/target/release/examples/iofwd}

# ---- the veths ----
ip netns add "$NS_G"
ip netns add "$NS_S"
for side in G S; do
    ns=NS_$side ifc=IF_$side addr=IP_$side
    ip link add "${!ifc}" numtxqueues 1 numrxqueues 1 type veth \
        peer name eth0 netns "${!ns}" numtxqueues 1 numrxqueues 1
    # The switch side sends single frames only (AF_XDP); TSO off there
    # (the kernel turns it off anyway while the peer has XDP) so that the
    # kernel system forwards the same MTU-sized frames.
    ethtool -K "${!ifc}" tso off >/dev/null
    ip link set "${!ifc}" up
    ip -n "${!ns}" link set lo up
    ip -n "${!ns}" addr add "${!addr}/24" dev eth0
    ip -n "${!ns}" link set eth0 up
    # GRO off: with no XDP program either, veth has no NAPI for eth0, so
    # whatever any system sends takes the backlog path (see the header).
    ip netns exec "${!ns}" ethtool -K eth0 tx off gro off >/dev/null
    ip netns exec "${!ns}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
MAC_S=$(ip -n "$NS_S" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}')
MAC_G=$(ip -n "$NS_G" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}')
# Static neighbours: no ARP in the measurements.
ip -n "$NS_G" neigh replace "$IP_S" lladdr "$MAC_S" dev eth0
ip -n "$NS_S" neigh replace "$IP_G" lladdr "$MAC_G" dev eth0

# ---- the two switches ----
oxvs_start() {
    cat > "$WORK/oxvs.toml" <<CONF
[datapath]
pmd_cores = [$PMD_CORE]

[control]
socket = "$WORK/oxvsd.ctl"

[[bridge]]
name = "br0"

[[bridge.port]]
name = "$IF_G"
type = "afxdp"
options = { xdp-mode = "$XDP_MODE"${BENCH_OXVS_OPTIONS:+, $BENCH_OXVS_OPTIONS} }

[[bridge.port]]
name = "$IF_S"
type = "afxdp"
options = { xdp-mode = "$XDP_MODE"${BENCH_OXVS_OPTIONS:+, $BENCH_OXVS_OPTIONS} }
CONF
    $NICE "$OXVSD" --config "$WORK/oxvs.toml" 2>"$WORK/oxvsd.log" &
    OXVSD_PID=$!
    for _ in $(seq 100); do
        $OXVSCTL call version >/dev/null 2>&1 && return 0
        kill -0 "$OXVSD_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/oxvsd.log" >&2
    echo "oxvsd did not start" >&2
    exit 1
}
oxvs_stop() {
    $OXVSCTL stop >/dev/null 2>&1 || true
    stop_pid "$OXVSD_PID"
    OXVSD_PID=
}
oxvs_appctl() { ovs-appctl -t "$WORK/oxvsd.ctl" "$@"; }

VSCTL="ovs-vsctl --db=unix:$WORK/db.sock --timeout=60"
ovs_start() {
    ovs_daemons_start
    autogroup_nice "$(cat "$WORK/vswitchd.pid")"
    log "  ovs-vswitchd $(cat "/proc/$(cat "$WORK/vswitchd.pid")/autogroup" 2>/dev/null), the benchmark $(cat /proc/$$/autogroup 2>/dev/null)"
    if ! $VSCTL get Open_vSwitch . iface_types | grep -qw afxdp; then
        echo "this ovs-vswitchd has no afxdp port type ($($VSCTL get Open_vSwitch . iface_types))" >&2
        exit 1
    fi
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev
    for ifc in "$IF_G" "$IF_S"; do
        $VSCTL add-port br0 "$ifc" -- set Interface "$ifc" type=afxdp \
            options:xdp-mode="$XDP_MODE" options:n_rxq=1
    done
    # Wait until both ports are in the datapath.
    for _ in $(seq 100); do
        [ "$(ovs_appctl dpif/show 2>/dev/null | grep -c 'afxdp')" -ge 2 ] && return 0
        sleep 0.1
    done
    ovs_appctl dpif/show >&2 || true
    tail -20 "$WORK/vswitchd.log" >&2
    echo "OVS did not add the afxdp ports" >&2
    exit 1
}

# The io system: examples/iofwd on the PMD core, with oxvs's port options
# (BENCH_OXVS_OPTIONS's TOML entries as --option KEY=VALUE).
io_start() {
    local opts=(--option "xdp-mode=$XDP_MODE") entry
    if [ -n "${BENCH_OXVS_OPTIONS:-}" ]; then
        while IFS= read -r entry; do
            entry=$(echo "$entry" | tr -d ' "')
            [ -n "$entry" ] && opts+=(--option "$entry")
        done < <(echo "$BENCH_OXVS_OPTIONS" | tr ',' '\n')
    fi
    rm -f "$WORK/io.base"
    # Cumulative counters every 100 ms: io_appctl reads the last ones.
    $NICE "$IOFWD" --a "$IF_G" --b "$IF_S" --cpu "$PMD_CORE" --report-ms 100 "${opts[@]}" \
        >"$WORK/iofwd.out" 2>&1 &
    IO_PID=$!
    for _ in $(seq 100); do
        grep -q '^io stats' "$WORK/iofwd.out" && return 0
        kill -0 "$IO_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/iofwd.out" >&2
    echo "iofwd did not start" >&2
    exit 1
}
io_stop() { # SIGTERM; its exit status says whether every UMEM frame came back
    local status=0
    kill -TERM "$IO_PID"
    wait "$IO_PID" || status=$?
    IO_PID=
    log "  iofwd: $(grep -E '^(io total|avg processing|tx zero-copy|umem frames)' "$WORK/iofwd.out" | tr '\n' ' ')"
    if [ "$status" != 0 ]; then
        tail -5 "$WORK/iofwd.out" >&2
        echo "iofwd exited with status $status" >&2
        exit 1
    fi
}
# The two pmd-stats commands the measurements use, from iofwd's
# cumulative counters (at most ~100 ms old): clear notes a base, show
# prints the difference in pmd-stats-show's words.
io_appctl() {
    local now base
    # (awk's %d is 32-bit in mawk: the cycle counts need %.0f.)
    now=$(grep '^io stats' "$WORK/iofwd.out" | tail -1 | awk '{print $5, $8, $11}')
    case $1 in
        dpif-netdev/pmd-stats-clear) echo "$now" >"$WORK/io.base" ;;
        dpif-netdev/pmd-stats-show)
            base=$(cat "$WORK/io.base" 2>/dev/null || echo 0 0 0)
            echo "$base $now" | awk '{rx = $4 - $1; busy = $5 - $2; idle = $6 - $3
                printf "pmd thread iofwd:\n  packets received: %.0f\n  idle cycles: %.0f\n  processing cycles: %.0f\n", rx, idle, busy
                printf "  avg processing cycles per packet: %.2f (%.0f/%.0f)\n", rx ? busy / rx : 0, busy, rx}'
            ;;
        *) echo "io_appctl: $1 is not emulated" >&2; return 1 ;;
    esac
}

# The kernel system: tc ingress redirect both ways between the
# switch-side veths.
kernel_start() { # [rps]: steer their receive work to the PMD core
    KERNEL_FWD=1
    local rps=${1:-}
    for pair in "$IF_G $IF_S" "$IF_S $IF_G"; do
        set -- $pair
        tc qdisc add dev "$1" ingress
        # cBPF "ret #-1": every frame matches (this kernel has no matchall).
        tc filter add dev "$1" ingress bpf bytecode '1,6 0 0 4294967295,' \
            action mirred egress redirect dev "$2"
        if [ -n "$rps" ]; then
            printf '%x' $((1 << PMD_CORE)) >"/sys/class/net/$1/queues/rx-0/rps_cpus"
        fi
    done
}
kernel_stop() {
    for ifc in "$IF_G" "$IF_S"; do
        tc qdisc del dev "$ifc" ingress 2>/dev/null
        echo 0 >"/sys/class/net/$ifc/queues/rx-0/rps_cpus" 2>/dev/null
    done
    KERNEL_FWD=
    true
}

# For the kernel systems with the xdp-live generator: veth takes live
# frames only into a peer with an XDP program, so a native XDP_PASS one
# sits on the switch-side end for the UDP test only (it would turn GRO on
# for TCP).
pass_start() {
    [ "$GEN" = xdp-live ] || return 0
    "$PKTGEN" xdp-pass --netns - --iface "$IF_G" --seconds $((SECS + 20)) >"$WORK/pass.out" 2>&1 &
    PASS_PID=$!
    sleep 0.5
    kill -0 "$PASS_PID" 2>/dev/null || { cat "$WORK/pass.out" >&2; exit 1; }
}
pass_stop() {
    stop_pid "${PASS_PID:-}"
    PASS_PID=
}

# ---- measurements (the switch under test is running) ----

learn() { # both MACs in the switch's table, a route through it
    ip netns exec "$NS_G" ping -c 2 -i 0.2 -W 2 "$IP_S" >/dev/null
    ip netns exec "$NS_S" ping -c 2 -i 0.2 -W 2 "$IP_G" >/dev/null
}

# The TID of process $1's first PMD thread (oxvsd: pmd-cNN, OVS: pmd-cNN/id:N).
pmd_tid() { [ -n "$1" ] || return 0; ps -L -o tid=,comm= -p "$1" | awk '$2 ~ /^pmd/ {print $1; exit}'; }

SYSCALL_EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg
pmd_rx() { # appctl-function -> packets received by the busiest PMD
    $1 dpif-netdev/pmd-stats-show | awk -F': ' '/packets received/ {split($2, a, " "); if (a[1] > m) m = a[1]} END {print m + 0}'
}
# In the background: counts the syscalls of thread $2 for $3 seconds and
# the PMD's received packets over the same window, into $4 and $4.rx.
perf_syscalls_start() { # appctl-function tid seconds out
    PERF_PID=
    command -v perf >/dev/null && [ -n "$2" ] || return 0
    (
        rx0=$(pmd_rx "$1")
        # No workload: with `perf stat -t TID -- sleep N` every event of
        # the PMD thread read 0 in 2 of 3 runs (probably the counters wait
        # for the workload's exec to be enabled); without one, 5 of 5
        # counted.
        timeout -s INT "$3" perf stat -x, -e "$SYSCALL_EVENTS" -t "$2" -o "$4" >/dev/null 2>&1 || true
        echo "$rx0 $(pmd_rx "$1")" >"$4.rx"
    ) &
    PERF_PID=$!
}
perf_syscalls_wait() { # (not in a subshell: the counter is this shell's job)
    [ -n "${PERF_PID:-}" ] && wait "$PERF_PID" 2>/dev/null
    PERF_PID=
}
perf_syscalls_result() { # out -> syscalls per PMD packet, or -
    local out=$1 rx total
    rx=$(awk '{print $2 - $1}' "$out.rx" 2>/dev/null)
    total=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$out" 2>/dev/null)
    if [ -z "$total" ] || [ -z "$rx" ] || [ "$rx" -le 0 ]; then echo -; return; fi
    # In copy mode every tx kick is a sendto, so 0 for a PMD that
    # forwarded packets means the counter never ran (perf stat -t on the
    # thread sometimes reads 0 for every event): unmeasured, not 0.
    if [ "$total" = 0 ]; then
        log "  pmd syscalls: perf counted none for $rx packets (the counter did not run): -"
        echo -
        return
    fi
    log "  pmd syscalls: $(awk -F, '$3 ~ /^syscalls:/ && $1 > 0 {sub("syscalls:sys_enter_", "", $3); printf "%s %s, ", $3, $1}' "$out")all $total for $rx packets"
    echo "$total / $rx" | bc -l
}

# BENCH_PROFILE=1: samples thread $2 of process $1 for $3 seconds into $4
# (in the background), and notes its user and system CPU ticks: the
# kernel's own accounting, which also counts the softirq work (the
# receiving namespace's stack) that runs inside the thread's sendto and
# that cpu-clock samples can miss.
profile_start() { # pid tid seconds out
    PROF_PID=
    [ "$PROFILE" = 1 ] && command -v perf >/dev/null && [ -n "$2" ] || return 0
    echo "$1 $2 $(cut -d' ' -f14,15 "/proc/$1/task/$2/stat")" >"$4.ticks"
    grep "^cpu$PMD_CORE " /proc/stat >"$4.cpu"
    perf record -q -e cpu-clock -F 4999 -t "$2" -o "$4" -- sleep "$3" >/dev/null 2>&1 &
    PROF_PID=$!
}
profile_report() { # label out: user/kernel split and the top functions
    [ -n "${PROF_PID:-}" ] || return 0
    wait "$PROF_PID" 2>/dev/null
    PROF_PID=
    [ -s "$2" ] || return 0
    local rep pid tid u0 s0 u1 s1
    read -r pid tid u0 s0 <"$2.ticks"
    read -r u1 s1 < <(cut -d' ' -f14,15 "/proc/$pid/task/$tid/stat")
    local ms=$((1000 / $(getconf CLK_TCK)))
    log "  cpu time $1: user $(((u1 - u0) * ms)) ms, system $(((s1 - s0) * ms)) ms (/proc ticks)"
    # The PMD core as a whole: softirq work (the far side's veth NAPI, XDP
    # and socket copy, the receiving stack) runs there at irq exit or
    # inside the PMD's sendto, and tick or cpu-clock sampling of the
    # thread books it to whatever user code was interrupted.
    log "  cpu$PMD_CORE $1: $( (cat "$2.cpu"; grep "^cpu$PMD_CORE " /proc/stat) | awk '
        NR == 1 {for (i = 2; i <= 9; i++) a[i] = $i}
        NR == 2 {t = 0; for (i = 2; i <= 9; i++) {d[i] = $i - a[i]; t += d[i]}
                 if (t > 0) printf "user %.0f%%, system %.0f%%, softirq %.0f%%, irq %.0f%%, idle %.0f%%, steal %.0f%%",
                     100 * (d[2] + d[3]) / t, 100 * d[4] / t, 100 * d[8] / t, 100 * d[7] / t, 100 * (d[5] + d[6]) / t, 100 * d[9] / t}')"
    rep=$(perf report -i "$2" --stdio --no-children --sort sym -q 2>/dev/null | grep '%' || true)
    log "  profile $1: $(echo "$rep" | awk '{gsub("%", "", $1); if ($2 == "[k]") k += $1; else u += $1} END {printf "kernel %.1f%%, user %.1f%%", k, u}')"
    echo "$rep" | head -n "${BENCH_PROFILE_TOP:-25}" | sed "s/^/[bench]     /" >&2
    rm -f "$2" "$2.ticks" "$2.cpu"
}

# The far side's path counters, as name value lines: the sink namespace's
# eth0 (veth ethtool -S: what went through NAPI/XDP, which must stay 0;
# rx_packets: everything veth handed over) and the machine's backlog drops
# (/proc/net/softnet_stat column 2, all CPUs: a full backlog drops frames
# before the sink sees them).
far_counters() {
    ip netns exec "$NS_S" ethtool -S eth0 2>/dev/null \
        | awk -F': *' '$1 ~ /rx_queue_0_(xdp_packets|drops)$/ {gsub(" ", "", $1); print $1, $2}'
    echo "rx_packets $(ip netns exec "$NS_S" cat /sys/class/net/eth0/statistics/rx_packets)"
    local drops total=0
    while read -r _ drops _; do total=$((total + 0x$drops)); done </proc/net/softnet_stat
    echo "backlog_drops $total"
}

# appctl-function (none for the kernel system: no PMD) and pid ->
# "mpps cycles syscalls/packet delivered%" (- for what does not apply).
measure_udp() {
    local appctl=$1 pid=$2
    $LOAD "$PKTGEN" drop --netns "$NS_S" --iface eth0 --seconds $((SECS + 3)) \
        >"$WORK/sink.out" 2>&1 &
    SINK_PID=$!
    sleep 1
    [ "$appctl" = none ] || $appctl dpif-netdev/pmd-stats-clear >/dev/null
    far_counters >"$WORK/far.0"
    if [ "$appctl" != none ]; then
        perf_syscalls_start "$appctl" "$(pmd_tid "$pid")" "$SECS" "$WORK/perf.out"
        profile_start "$pid" "$(pmd_tid "$pid")" "$SECS" "$WORK/prof-udp.data"
    fi
    $LOAD "$PKTGEN" tx --netns "$NS_G" --iface eth0 $GEN_ARGS --size 64 --seconds $((SECS + 1)) \
        --dst-mac "$MAC_S" --src-ip "$IP_G" --dst-ip "$IP_S" >"$WORK/gen.out" 2>&1 &
    GEN_PID=$!
    wait "$GEN_PID" || { cat "$WORK/gen.out" >&2; exit 1; }
    GEN_PID=
    local cyc=- spp=-
    if [ "$appctl" != none ]; then
        perf_syscalls_wait
        spp=$(perf_syscalls_result "$WORK/perf.out")
        profile_report udp "$WORK/prof-udp.data"
        cyc=$(cycles_per_packet "$appctl")
    fi
    wait "$SINK_PID" || { cat "$WORK/sink.out" >&2; exit 1; }
    SINK_PID=
    far_counters >"$WORK/far.1"
    local far
    far=$(paste "$WORK/far.0" "$WORK/far.1" | awk '{printf "%s %d, ", $1, $4 - $2}')
    log "  far side: ${far%, }"
    # The path check: not one frame through veth's NAPI/XDP.
    if [ "$(paste "$WORK/far.0" "$WORK/far.1" | awk '$1 == "rx_queue_0_xdp_packets" {print $4 - $2}')" != 0 ]; then
        echo "frames reached the far side through veth's NAPI path ($far): the sink's path is not the fixed one" >&2
        exit 1
    fi
    # The sink's per-second counts while the generator ran: the sink
    # starts a second early and runs two seconds past the generator, so
    # skip the idle seconds and the first (partial) busy one.
    local pps
    pps=$(awk '/^drop [0-9]+ pps/ {print $2}' "$WORK/sink.out" | awk '$1 > 1000' | tail -n +2 | head -n "$SECS" | median)
    # What reached the sink of all the generator sent: near 100 % means
    # the system kept up and the generator (one CPU) set the Mpps.
    local sent got
    sent=$(awk '/^tx total/ {print $3}' "$WORK/gen.out")
    got=$(awk '/^drop total/ {print $3}' "$WORK/sink.out")
    echo "$(echo "$pps / 1000000" | bc -l) $cyc $spp $(echo "100 * $got / $sent" | bc -l)"
    log "  udp: median $pps pps at the far side; sink $(grep "^drop total" "$WORK/sink.out"); generator $(tail -1 "$WORK/gen.out"); ${cyc} cycles/packet"
}

measure_tcp() { # pid (none for the kernel system) [appctl-function] -> Gbit/s
    # In the background rather than -D (which would detach it into an
    # autogroup of its own); it serves one test and exits.
    [ -z "${2:-}" ] || $2 dpif-netdev/pmd-stats-clear >/dev/null
    $LOAD ip netns exec "$NS_S" iperf3 -s -1 -B "$IP_S" --logfile "$WORK/iperf3-server.log" >/dev/null 2>&1 &
    sleep 0.3
    [ "$1" = none ] || profile_start "$1" "$(pmd_tid "$1")" "$((SECS - 1))" "$WORK/prof-tcp.data"
    local gbps
    gbps=$($LOAD ip netns exec "$NS_G" iperf3 -c "$IP_S" -t "$SECS" -J \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)')
    rm -f "$WORK/iperf3-server.log"
    [ "$1" = none ] || profile_report tcp "$WORK/prof-tcp.data"
    echo "$gbps"
    log "  tcp: $gbps Gbit/s"
    # Whether the PMD bounded TCP: the share of its cycles that found
    # nothing to do (its own accounting, the same in both switches). Time
    # the PMD thread spends in the kernel inside its syscalls (the far
    # side's stack runs in its sendto) counts as processing.
    [ -z "${2:-}" ] || log "  tcp pmd: $($2 dpif-netdev/pmd-stats-show | awk -F': ' '
        /^ *idle cycles:/ {i = $2} /^ *processing cycles:/ {p = $2}
        /avg processing cycles per packet:/ {a = $2}
        /packets received:/ {if ($2 + 0 > r) r = $2 + 0}
        END {printf "idle cycles %s, processing cycles %s, %d packets, %s processing cycles/packet", i, p, r, a}')"
}

declare -A RES   # RES[system,metric,run]
for run in $(seq "$RUNS"); do
    if [[ ,$SYSTEMS, == *,oxvs,* ]]; then
        log "run $run/$RUNS: oxvs (xdp-mode $XDP_MODE, PMD on CPU $PMD_CORE)"
        oxvs_start
        learn
        read -r RES[oxvs,mpps,$run] RES[oxvs,cpp,$run] RES[oxvs,spp,$run] RES[oxvs,deliv,$run] < <(measure_udp oxvs_appctl "$OXVSD_PID")
        # Where oxvs lost packets: the AF_XDP sockets' own counters.
        oxvs_appctl dpctl/show -s | awk '/port [0-9]+:/ {p = $3} /xsk_/ {print "  " p " " $0}' | sed 's/^/[bench] /' >&2
        RES[oxvs,tcp,$run]=$(measure_tcp "$OXVSD_PID" oxvs_appctl)
        oxvs_stop
    fi
    if [[ ,$SYSTEMS, == *,ovs,* ]]; then
        log "run $run/$RUNS: OVS (afxdp, xdp-mode $XDP_MODE, PMD on CPU $PMD_CORE)"
        ovs_start
        learn
        read -r RES[ovs,mpps,$run] RES[ovs,cpp,$run] RES[ovs,spp,$run] RES[ovs,deliv,$run] < <(measure_udp ovs_appctl "$(cat "$WORK/vswitchd.pid")")
        RES[ovs,tcp,$run]=$(measure_tcp "$(cat "$WORK/vswitchd.pid")" ovs_appctl)
        ovs_daemons_stop
    fi
    if [[ ,$SYSTEMS, == *,kernel,* ]]; then
        log "run $run/$RUNS: kernel (tc ingress mirred between the veths)"
        kernel_start
        learn
        pass_start
        read -r RES[kernel,mpps,$run] RES[kernel,cpp,$run] RES[kernel,spp,$run] RES[kernel,deliv,$run] < <(measure_udp none none)
        pass_stop
        RES[kernel,tcp,$run]=$(measure_tcp none)
        log "  $(tc -s filter show dev "$IF_G" ingress | awk '/Sent/ {print "mirred " $0; exit}')"
        kernel_stop
    fi
    if [[ ,$SYSTEMS, == *,io,* ]]; then
        log "run $run/$RUNS: io (examples/iofwd, afxdp ports as oxvs's, xdp-mode $XDP_MODE, on CPU $PMD_CORE)"
        io_start
        learn
        read -r RES[io,mpps,$run] RES[io,cpp,$run] RES[io,spp,$run] RES[io,deliv,$run] < <(measure_udp io_appctl "$IO_PID")
        RES[io,tcp,$run]=$(measure_tcp "$IO_PID" io_appctl)
        io_stop
    fi
    if [[ ,$SYSTEMS, == *,kernel-rps,* ]]; then
        log "run $run/$RUNS: kernel-rps (tc ingress mirred between the veths, RPS to CPU $PMD_CORE)"
        kernel_start rps
        learn
        if [ "$GEN" = xdp-live ]; then
            pass_start
            read -r RES[kernel-rps,mpps,$run] RES[kernel-rps,cpp,$run] RES[kernel-rps,spp,$run] RES[kernel-rps,deliv,$run] < <(measure_udp none none)
            pass_stop
        else
            log "  udp: - (with RPS the AF_XDP generator's sends mostly fail)"
        fi
        RES[kernel-rps,tcp,$run]=$(measure_tcp none)
        kernel_stop
    fi
done

echo
echo "oxvs${BENCH_OXVS_OPTIONS:+ ($BENCH_OXVS_OPTIONS)} vs OVS $(ovs-vswitchd --version | awk 'NR==1 {print $NF}') afxdp vs the kernel (tc mirred) vs io (examples/iofwd); veth pair per namespace, xdp-mode $XDP_MODE, one PMD on CPU $PMD_CORE; far side: tcx drop sink; $NCPU CPUs $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); kernel $(uname -r); median of $RUNS runs x $SECS s; nice ${BENCH_NICE:--20}; traffic pinned ${BENCH_PIN:-1}; load $(cut -d' ' -f1-3 /proc/loadavg)"
# One column per system measured, then each one's ratio to OVS.
IFS=, read -r -a COLS <<<"$SYSTEMS"
RATIOS=()
for c in "${COLS[@]}"; do [ "$c" != ovs ] && RATIOS+=("$c"); done
header="| $(printf '%-32s' figure) |"
rule="|$(printf '%34s' '' | tr ' ' -)|"
for c in "${COLS[@]}"; do header+=" $(printf '%10s' "$c") |"; rule+="------------|"; done
for c in "${RATIOS[@]}"; do header+=" $(printf '%14s' "$c/ovs") |"; rule+="----------------|"; done
echo "$header"
echo "$rule"
row() { # label metric digits [invert]
    local line v c
    line="| $(printf '%-32s' "$1") |"
    v=$(med ovs "$2")
    for c in "${COLS[@]}"; do line+=" $(printf '%10s' "$(fmt "$(med "$c" "$2")" "$3")") |"; done
    for c in "${RATIOS[@]}"; do line+=" $(printf '%14s' "$(ratio "$(med "$c" "$2")" "$v" ${4:-})") |"; done
    echo "$line"
}
row "64-byte UDP Mpps (far side)" mpps 3
row "UDP delivered/offered %" deliv 1
row "PMD cycles/packet (lower wins)" cpp 0 invert
row "PMD syscalls/packet (lower wins)" spp 3 invert
row "iperf3 TCP Gbit/s" tcp 2
echo "(cycles and syscalls ratios are OVS/system, so > 1 means cheaper than OVS; the kernel systems have no PMD; io is the AF_XDP io forward, a switch's ceiling)"
