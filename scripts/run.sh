#!/usr/bin/env bash
# The main job: oxvsd switching real traffic between two network
# namespaces. Creates two namespaces with veth pairs, attaches the host
# ends to bridge br0 as AF_XDP ports (NORMAL: a MAC-learning switch, one
# PMD), then shows ping both ways, iperf3 TCP throughput through oxvs,
# and what oxvsctl sees (flows, PMD stats, the MAC table). Everything it
# creates is removed at the end, also when interrupted.
#
#   DEMO_SECONDS=N   iperf3 duration (default 5)
#   OXVS_PORT_TYPE   afxdp (default) or system (AF_PACKET)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-5}
port_type=${OXVS_PORT_TYPE:-afxdp}
tag=oxd$$
ns1=${tag}-a ns2=${tag}-b
if1=${tag}a if2=${tag}b
ip1=10.99.0.1 ip2=10.99.0.2
work=/tmp/oxvs-run-$tag
socket=$work/oxvsd.ctl

[[ $(id -u) -eq 0 ]] || { echo "run.sh needs root (network namespaces, XDP)" >&2; exit 1; }

./scripts/install-deps.sh --demo

echo "==> building oxvsd and oxvsctl (release)"
cargo build --release --quiet -p oxvs -p ctl --bins
oxvsctl() { target/release/oxvsctl --socket "$socket" "$@"; }

pid=
cleanup() {
    set +e
    [[ -n $pid ]] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    ip netns del "$ns1" 2>/dev/null
    ip netns del "$ns2" 2>/dev/null
    ip link del "$if1" 2>/dev/null
    ip link del "$if2" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "==> two hosts: $ns1 ($ip1) and $ns2 ($ip2), host ends $if1 and $if2"
mkdir -p "$work"
for n in 1 2; do
    ns=ns$n if=if$n addr=ip$n
    ip netns add "${!ns}"
    ip link add "${!if}" numtxqueues 1 numrxqueues 1 type veth peer name eth0 netns "${!ns}" numtxqueues 1 numrxqueues 1
    ip link set "${!if}" up
    ip -n "${!ns}" link set lo up
    ip -n "${!ns}" addr add "${!addr}/24" dev eth0
    ip -n "${!ns}" link set eth0 up
    # An AF_XDP frame carries no checksum-offload state, so the hosts must
    # send full checksums (tx off, which also turns TSO off). A system port
    # completes partial checksums itself: there only super-frames must go.
    if [[ $port_type == afxdp ]]; then
        ip netns exec "${!ns}" ethtool -K eth0 tx off >/dev/null
    else
        ip netns exec "${!ns}" ethtool -K eth0 tso off gso off >/dev/null
    fi
    ip netns exec "${!ns}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done

cores=$(nproc)
pmd_core=$((cores > 1 ? 1 : 0))
cat > "$work/oxvs.toml" <<CONF
[datapath]
pmd_cores = [$pmd_core]

[control]
socket = "$socket"

[[bridge]]
name = "br0"

[[bridge.port]]
name = "$if1"
type = "$port_type"

[[bridge.port]]
name = "$if2"
type = "$port_type"
CONF

echo "==> starting oxvsd ($port_type ports, PMD on core $pmd_core)"
target/release/oxvsd --config "$work/oxvs.toml" 2> >(sed 's/^/  oxvsd: /' >&2) &
pid=$!
for _ in $(seq 100); do
    oxvsctl call version >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "oxvsd exited during start-up" >&2; exit 1; }
    sleep 0.1
done

echo "==> ping $ns1 -> $ns2"
ip netns exec "$ns1" ping -c 3 -i 0.2 -W 2 "$ip2"
echo "==> ping $ns2 -> $ns1"
ip netns exec "$ns2" ping -c 3 -i 0.2 -W 2 "$ip1"

echo "==> iperf3 TCP $ns1 -> $ns2 for ${seconds}s"
ip netns exec "$ns2" iperf3 -s -1 -D -B "$ip2" --logfile "$work/iperf3-server.log"
sleep 0.3
ip netns exec "$ns1" iperf3 -c "$ip2" -t "$seconds" -f g | tail -4

echo "==> oxvsctl dump-flows"
oxvsctl dump-flows --names
echo "==> oxvsctl fdb br0"
oxvsctl fdb br0
echo "==> oxvsctl pmd-stats"
oxvsctl pmd-stats
echo "==> stopping oxvsd"
oxvsctl stop
wait "$pid"
pid=
