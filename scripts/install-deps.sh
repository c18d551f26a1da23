#!/usr/bin/env bash
# Installs what building and testing oxvs needs on Debian 12, if missing.
# Idempotent and quick when everything is there. Used by .ci/run,
# scripts/test.sh and scripts/run.sh.
#
#   install-deps.sh          build + test prerequisites
#   install-deps.sh --demo   the same (iperf3, which the demo runs, is always installed)
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

have_cmd cc || need+=(gcc)
have_cmd c++ || need+=(g++)
have_cmd pkg-config || need+=(pkg-config)
# DPDK 22.11: the dpdk port type (built in by default) links libdpdk;
# dpdk-dev brings the vdev drivers (net_null, net_pcap, ...) the tests use.
have_pkg libdpdk-dev || need+=(libdpdk-dev)
have_pkg dpdk-dev || need+=(dpdk-dev)
# libclang: dpdk-sys's test regenerates its bindings and checks for drift.
have_pkg libclang-dev || need+=(libclang-dev)
# The stock ovs-appctl, to prove the control socket speaks unixctl.
have_cmd ovs-appctl || need+=(openvswitch-common)
# Network namespaces, veth and ping for the AF_XDP/tap/af_packet tests.
have_cmd ip || need+=(iproute2)
have_cmd ethtool || need+=(ethtool)
have_cmd ping || need+=(iputils-ping)
# Operator-visibility tests: tshark reads live captures back; the Prometheus
# project's Python parser checks the metrics page.
have_cmd tshark || need+=(tshark)
have_pkg python3-prometheus-client || need+=(python3-prometheus-client)
# tshark decodes the underlay capture of the VXLAN/Geneve tests
# (tests/tunnel.rs); DEBIAN_FRONTEND=noninteractive skips its dumpcap prompt.
have_cmd tshark || need+=(tshark)
# iperf3 across the VXLAN/Geneve overlays (tests/tunnel.rs) and the
# namespace demo.
have_cmd iperf3 || need+=(iperf3)

if ((${#need[@]})); then
    echo "==> installing ${need[*]}"
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
