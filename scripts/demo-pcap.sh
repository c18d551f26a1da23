#!/usr/bin/env bash
# The no-privilege demo: oxvsd forwarding a replayed capture
# (configs/demo-pcap.toml: a replayed capture through bridge br0 on one
# PMD), then the flows and PMD statistics as oxvsctl shows them. Builds
# what it needs, runs for DEMO_SECONDS (default 5) and stops the daemon,
# leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-5}
demo_dir=/tmp/oxvs-demo
socket=$demo_dir/oxvsd.ctl

./scripts/install-deps.sh
echo "==> building oxvsd and oxvsctl (release)"
cargo build --release --quiet -p oxvs -p ctl --bins
oxvsctl() { target/release/oxvsctl --socket "$socket" "$@"; }

rm -rf "$demo_dir"
mkdir -p "$demo_dir"
target/release/oxvsd --config configs/demo-pcap.toml 2> >(sed 's/^/  oxvsd: /' >&2) &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$demo_dir"
}
trap cleanup EXIT INT TERM

for _ in $(seq 100); do
    oxvsctl call version >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "oxvsd exited during start-up" >&2; exit 1; }
    sleep 0.1
done

echo "==> forwarding for ${seconds}s"
sleep "$seconds"
echo "==> oxvsctl show"
oxvsctl show
echo "==> oxvsctl dump-flows"
oxvsctl dump-flows
echo "==> oxvsctl dump-rules br0"
oxvsctl dump-rules br0
echo "==> oxvsctl pmd-stats"
oxvsctl pmd-stats
echo "==> stopping"
oxvsctl stop
wait "$pid"
trap - EXIT INT TERM
rm -rf "$demo_dir"
