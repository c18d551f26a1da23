#!/usr/bin/env bash
# VXLAN encapsulation + decapsulation: oxvs vs Open vSwitch 3.1 (Debian's
# openvswitch-switch, netdev datapath, `afxdp` ports), one PMD core each.
#
# Every packet crosses the switch twice: the generator's frame is
# encapsulated (tnl_push) and sent out of one end of an underlay veth
# loop; it comes back in on the other end addressed to the switch's own
# VTEP, is decapsulated (tnl_pop + recirculation) and delivered to the
# sink. So one PMD does encap and decap of every packet, and Mpps at the
# sink is "VXLAN encap+decap per core".
#
#   ns tn<pid>-g eth0 10.97.0.1 == tng<pid> \                 / tnu<pid>a ==\
#                                            switch (1 PMD)                   veth loop
#   ns tn<pid>-s eth0 10.97.0.2 == tns<pid> /  VTEP 172.30.0.1 \ tnu<pid>b ==/
#
# Both switches: br-int (tng, tns, vx0) and br-phy (tnu*a, tnu*b, and the
# VTEP port: oxvs's internal port tnv<pid>, OVS's LOCAL port br-phy), the
# usual native-tunnel layout, with the same two rules on each. Both: the
# tunnel's remote is the switch's own VTEP, a static neighbour entry for
# it (tnl/neigh/set) so no ARP runs during the measurement, the route
# learned from the host. Ports are AF_XDP (native mode) on single-queue
# veths; the internal port is a tap in both.
#
# Figures per system (median of BENCH_RUNS runs, each the median of its
# per-second sink samples):
#   Mpps  64-byte inner UDP frames counted by the sink (examples/pktgen rx)
#   c/p   PMD "avg processing cycles per packet" (pmd-stats-show; each
#         packet is counted twice by both switches: once per pass)
#
# BENCH_UNDERLAY=ipv6 runs the same over an IPv6 underlay: the VTEP is
# fd00:30::1/64 (nodad), the outer header IPv6 with a UDP checksum (both
# switches' default for IPv6 tunnels), the static neighbour an IPv6 one.
#
# Usage (root): benches/tunnel-vs-ovs.sh
#   BENCH_RUNS=3 BENCH_SECONDS=5 BENCH_SYSTEMS=oxvs,ovs BENCH_BUILD=0
#   BENCH_UNDERLAY=ipv4|ipv6
# Starts its own ovsdb-server/ovs-vswitchd in a temp dir and stops
# everything it started (and deletes every namespace and link) on exit.
set -euo pipefail

RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
SYSTEMS=${BENCH_SYSTEMS:-oxvs,ovs}
NCPU=$(nproc)
PMD_CORE=$((NCPU - 1))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/tn-bench.XXXXXX)
TAG=tn$$
NS_G=$TAG-g NS_S=$TAG-s
IF_G=tng$$ IF_S=tns$$ UL_A=tnu$$a UL_B=tnu$$b VTEP_DEV=tnv$$
IP_G=10.97.0.1 IP_S=10.97.0.2
UNDERLAY=${BENCH_UNDERLAY:-ipv4}
case $UNDERLAY in
    ipv4) VTEP=172.30.0.1 VTEP_PLEN=24 VTEP_NET=172.30.0.0/24 ;;
    ipv6) VTEP=fd00:30::1 VTEP_PLEN=64 VTEP_NET=fd00:30::/64 ;;
    *) echo "BENCH_UNDERLAY must be ipv4 or ipv6" >&2; exit 1 ;;
esac
VNI=5000
OXVSD_PID= SINK_PID= GEN_PID=

. "$(dirname "$0")/lib/ovs-bench.sh"

ovs_stop() {
    ovs_daemons_stop
    # OVS leaves its internal port device behind.
    ip link del br-phy 2>/dev/null || true
    ip link del br-int 2>/dev/null || true
}

cleanup() {
    set +e
    stop_pid "$GEN_PID"; stop_pid "$SINK_PID"; stop_pid "$OXVSD_PID"
    ovs_stop
    for ns in "$NS_G" "$NS_S"; do
        ip netns del "$ns" 2>/dev/null
    done
    for l in "$IF_G" "$IF_S" "$UL_A" "$VTEP_DEV"; do ip link del "$l" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, XDP, OVS)" >&2; exit 1; }
if ip link show br-phy >/dev/null 2>&1 || ip link show br-int >/dev/null 2>&1; then
    echo "a br-phy or br-int device exists already: another OVS is running here" >&2
    exit 1
fi
need=()
command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)
command -v bc >/dev/null || need+=(bc)
command -v ethtool >/dev/null || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
    systemctl stop openvswitch-switch 2>/dev/null || true
fi

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    log "building oxvsd and the generator (release)"
    (cd "$ROOT" && cargo build --release -q -p oxvs --bin oxvsd \
        -p netdev-afxdp --example pktgen >&2)
fi
OXVSD=$ROOT/target/release/oxvsd
PKTGEN=$ROOT/target/release/examples/pktgen

# ---- generator, sink, underlay loop ----
ip netns add "$NS_G"
ip netns add "$NS_S"
for side in G S; do
    ns=NS_$side ifc=IF_$side addr=IP_$side
    ip link add "${!ifc}" numtxqueues 1 numrxqueues 1 type veth \
        peer name eth0 netns "${!ns}" numtxqueues 1 numrxqueues 1
    ip link set "${!ifc}" up
    ip -n "${!ns}" link set lo up
    ip -n "${!ns}" addr add "${!addr}/24" dev eth0
    ip -n "${!ns}" link set eth0 up
    ip netns exec "${!ns}" ethtool -K eth0 tx off >/dev/null
    ip netns exec "${!ns}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip link add "$UL_A" numtxqueues 1 numrxqueues 1 type veth peer name "$UL_B" numtxqueues 1 numrxqueues 1
ip link set "$UL_A" up
ip link set "$UL_B" up
for l in "$UL_A" "$UL_B"; do sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"; done
MAC_S=$(ip -n "$NS_S" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}')
MAC_G=$(ip -n "$NS_G" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}')
ip -n "$NS_G" neigh replace "$IP_S" lladdr "$MAC_S" dev eth0
ip -n "$NS_S" neigh replace "$IP_G" lladdr "$MAC_G" dev eth0

# Gives the VTEP device its address and waits for the switch to learn the
# route; prints the device's MAC.
vtep_up() { # dev route-show-function
    if [ "$UNDERLAY" = ipv6 ]; then
        ip -6 addr add "$VTEP/$VTEP_PLEN" dev "$1" nodad
    else
        ip addr add "$VTEP/$VTEP_PLEN" dev "$1"
        sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
    fi
    ip link set "$1" up
    for _ in $(seq 100); do
        $2 ovs/route/show 2>/dev/null | grep -q "$VTEP_NET dev $1" && break
        sleep 0.1
    done
    ip -o link show "$1" | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}'
}

# ---- oxvs ----
oxvs_appctl() { ovs-appctl -t "$WORK/oxvsd.ctl" "$@"; }
oxvs_start() {
    cat > "$WORK/oxvs.toml" <<CONF
[datapath]
pmd_cores = [$PMD_CORE]

[control]
socket = "$WORK/oxvsd.ctl"

[[bridge]]
name = "br-int"
flows = [
    "priority=10,in_port=$IF_G,actions=output:vx0",
    "priority=10,in_port=vx0,actions=output:$IF_S",
]

CONF
    for p in "$IF_G" "$IF_S"; do
        printf '[[bridge.port]]\nname = "%s"\ntype = "afxdp"\noptions = { xdp-mode = "native" }\n\n' "$p" >> "$WORK/oxvs.toml"
    done
    printf '[[bridge.port]]\nname = "vx0"\ntype = "vxlan"\noptions = { remote_ip = "%s", key = %s }\n\n' "$VTEP" "$VNI" >> "$WORK/oxvs.toml"
    cat >> "$WORK/oxvs.toml" <<CONF
[[bridge]]
name = "br-phy"
flows = [
    "priority=10,in_port=$VTEP_DEV,actions=output:$UL_A",
    "priority=10,in_port=$UL_B,actions=output:$VTEP_DEV",
]

CONF
    for p in "$UL_A" "$UL_B"; do
        printf '[[bridge.port]]\nname = "%s"\ntype = "afxdp"\noptions = { xdp-mode = "native" }\n\n' "$p" >> "$WORK/oxvs.toml"
    done
    printf '[[bridge.port]]\nname = "%s"\ntype = "internal"\n' "$VTEP_DEV" >> "$WORK/oxvs.toml"
    "$OXVSD" --config "$WORK/oxvs.toml" 2>"$WORK/oxvsd.log" &
    OXVSD_PID=$!
    for _ in $(seq 100); do
        oxvs_appctl version >/dev/null 2>&1 && break
        kill -0 "$OXVSD_PID" 2>/dev/null || { cat "$WORK/oxvsd.log" >&2; exit 1; }
        sleep 0.1
    done
    local mac
    mac=$(vtep_up "$VTEP_DEV" oxvs_appctl)
    oxvs_appctl tnl/neigh/set br-phy "$VTEP" "$mac" >/dev/null
}
oxvs_stop() {
    oxvs_appctl exit >/dev/null 2>&1 || true
    stop_pid "$OXVSD_PID"
    OXVSD_PID=
}

# ---- OVS ----
VSCTL="ovs-vsctl --db=unix:$WORK/db.sock --timeout=60"
OFCTL="ovs-ofctl"
ovs_start() {
    ovs_daemons_start
    $VSCTL add-br br-int -- set bridge br-int datapath_type=netdev
    $VSCTL add-br br-phy -- set bridge br-phy datapath_type=netdev
    for p in "$IF_G" "$IF_S"; do
        $VSCTL add-port br-int "$p" -- set Interface "$p" type=afxdp options:xdp-mode=native options:n_rxq=1
    done
    for p in "$UL_A" "$UL_B"; do
        $VSCTL add-port br-phy "$p" -- set Interface "$p" type=afxdp options:xdp-mode=native options:n_rxq=1
    done
    $VSCTL add-port br-int vx0 -- set Interface vx0 type=vxlan \
        options:remote_ip="$VTEP" options:key="$VNI"
    local ofport_g ofport_s ofport_a ofport_b
    ofport_g=$($VSCTL get Interface "$IF_G" ofport)
    ofport_s=$($VSCTL get Interface "$IF_S" ofport)
    ofport_a=$($VSCTL get Interface "$UL_A" ofport)
    ofport_b=$($VSCTL get Interface "$UL_B" ofport)
    local vx
    vx=$($VSCTL get Interface vx0 ofport)
    $OFCTL del-flows br-int
    $OFCTL add-flow br-int "priority=10,in_port=$ofport_g,actions=output:$vx"
    $OFCTL add-flow br-int "priority=10,in_port=$vx,actions=output:$ofport_s"
    $OFCTL del-flows br-phy
    $OFCTL add-flow br-phy "priority=10,in_port=LOCAL,actions=output:$ofport_a"
    $OFCTL add-flow br-phy "priority=10,in_port=$ofport_b,actions=LOCAL"
    for _ in $(seq 100); do
        [ "$(ovs_appctl dpif/show 2>/dev/null | grep -c 'afxdp')" -ge 4 ] && break
        sleep 0.1
    done
    local mac
    mac=$(vtep_up br-phy ovs_appctl)
    ovs_appctl tnl/neigh/set br-phy "$VTEP" "$mac" >/dev/null
}

# ---- measurement ----

measure() { # appctl-function -> "mpps cycles"
    local appctl=$1
    # Warm up: the first packets resolve flows through the slow path.
    "$PKTGEN" tx --netns "$NS_G" --iface eth0 --type afxdp --size 64 --seconds 1 \
        --dst-mac "$MAC_S" --src-ip "$IP_G" --dst-ip "$IP_S" >/dev/null 2>&1 || true
    "$PKTGEN" rx --netns "$NS_S" --iface eth0 --type afxdp --seconds $((SECS + 3)) \
        >"$WORK/sink.out" 2>&1 &
    SINK_PID=$!
    sleep 1
    $appctl dpif-netdev/pmd-stats-clear >/dev/null
    "$PKTGEN" tx --netns "$NS_G" --iface eth0 --type afxdp --size 64 --seconds $((SECS + 1)) \
        --dst-mac "$MAC_S" --src-ip "$IP_G" --dst-ip "$IP_S" >"$WORK/gen.out" 2>&1 &
    GEN_PID=$!
    wait "$GEN_PID" || { cat "$WORK/gen.out" >&2; exit 1; }
    GEN_PID=
    local cyc
    cyc=$(cycles_per_packet "$appctl")
    wait "$SINK_PID" || { cat "$WORK/sink.out" >&2; exit 1; }
    SINK_PID=
    local pps
    pps=$(awk '/^rx [0-9]+ pps/ {print $2}' "$WORK/sink.out" | awk '$1 > 0' | tail -n +2 | head -n "$SECS" | median)
    echo "$(echo "$pps / 1000000" | bc -l) $cyc"
    log "  sink $(tail -1 "$WORK/sink.out"); generator $(tail -1 "$WORK/gen.out"); ${cyc} cycles/packet"
    log "  datapath flows: $($appctl dpctl/dump-flows 2>/dev/null | grep -c . || true)"
}

declare -A RES
for run in $(seq "$RUNS"); do
    if [[ ,$SYSTEMS, == *,oxvs,* ]]; then
        log "run $run/$RUNS: oxvs (PMD on CPU $PMD_CORE)"
        oxvs_start
        read -r RES[oxvs,mpps,$run] RES[oxvs,cpp,$run] < <(measure oxvs_appctl)
        oxvs_appctl dpctl/dump-flows > "$WORK/oxvs-flows.txt" 2>&1 || true
        oxvs_stop
    fi
    if [[ ,$SYSTEMS, == *,ovs,* ]]; then
        log "run $run/$RUNS: OVS (PMD on CPU $PMD_CORE)"
        ovs_start
        read -r RES[ovs,mpps,$run] RES[ovs,cpp,$run] < <(measure ovs_appctl)
        ovs_appctl dpctl/dump-flows > "$WORK/ovs-flows.txt" 2>&1 || true
        ovs_stop
    fi
done
for s in oxvs ovs; do
    [ -f "$WORK/$s-flows.txt" ] && { log "$s datapath flows (last run):"; sed 's/^/[bench]   /' "$WORK/$s-flows.txt" >&2; }
done

echo
echo "VXLAN over $UNDERLAY encap+decap, oxvs vs OVS $(ovs-vswitchd --version | awk 'NR==1 {print $NF}'); afxdp ports on veths, one PMD on CPU $PMD_CORE; $NCPU CPUs; kernel $(uname -r); median of $RUNS runs x $SECS s; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-36s | %10s | %10s | %10s |\n' figure oxvs OVS oxvs/OVS
printf '|%s|\n' "--------------------------------------|------------|------------|-----------"
o=$(med oxvs mpps); v=$(med ovs mpps)
printf '| %-36s | %10s | %10s | %10s |\n' "64-byte inner UDP, Mpps at the sink" "$(fmt "$o" 3)" "$(fmt "$v" 3)" "$(ratio "$o" "$v")"
o=$(med oxvs cpp); v=$(med ovs cpp)
printf '| %-36s | %10s | %10s | %10s |\n' "PMD cycles/pass (lower wins)" "$(fmt "$o" 0)" "$(fmt "$v" 0)" "$(ratio "$o" "$v" invert)"
echo "(cycles ratio is OVS/oxvs, so > 1 means oxvs is cheaper; a packet makes two passes)"
