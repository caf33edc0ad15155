#!/usr/bin/env bash
# Stops the real node started by hack/node-up.sh and leaves nothing of it behind on the host:
# its pods (sandboxes torn down through CNI, so their network namespaces go too), the kubelet,
# kube-proxy and kube-router (and their iptables rules and ipsets), CoreDNS, containerd and its
# shims, every mount under the node's directories, the bridge and the sink interface, and the
# sysctls it changed.
# The node's data (images, volumes) stays in .cluster/node unless --delete is given.
set -euo pipefail
# shellcheck source=hack/node-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

[[ -d "$NODE_DIR" ]] || exit 0

# kube-router keeps its rules when it stops (a restart takes them over), and its own
# --cleanup-config (v2.1) leaves the firewall's rules alone while it tears down what its router
# and service proxy would have made, so they go here: the jumps from the built-in chains, its
# chains (KUBE-ROUTER-*, a KUBE-POD-FW-* per pod, a KUBE-NWPLCY-* per policy), then the ipsets
# the rules named (KUBE-SRC-*, KUBE-DST-*).
remove_kube_router_state() {
  local rules
  rules="$(iptables-save -t filter | awk '
    /^:KUBE-(ROUTER|POD-FW|NWPLCY)-/ { chains[++n] = substr($1, 2) }
    /^-A (INPUT|FORWARD|OUTPUT) .*-j KUBE-ROUTER-/ { sub(/^-A/, "-D"); print }
    END { for (i = 1; i <= n; i++) print "-F " chains[i]; for (i = 1; i <= n; i++) print "-X " chains[i] }')"
  if [[ -n "$rules" ]]; then
    printf '*filter\n%s\nCOMMIT\n' "$rules" | iptables-restore -w --noflush
  fi
  if command -v ipset >/dev/null; then
    ipset list -n | awk '/^KUBE-(SRC|DST)-/' | xargs -r -n 1 ipset destroy
  fi
}

# The kubelet first, so that it restarts nothing while the pods go.
stop_daemon kubelet
if node_pid containerd >/dev/null; then
  say "removing the node's pods"
  "$TOOLS_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s rmp --all --force \
    >/dev/null 2>&1 || true
fi
stop_daemon kube-router
remove_kube_router_state
stop_daemon kube-proxy
"$TOOLS_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
stop_daemon coredns
stop_daemon containerd
# Shims outlive containerd by design; these are the ones of this node's containerd.
pkill -9 -f "containerd-shim.* -address $CONTAINERD_SOCK" 2>/dev/null || true

# Mounts: volumes and pod directories under the kubelet, snapshots and sandbox state under
# containerd; the deepest first.
unmount_under "$NODE_DIR" "$RUN_DIR"

ip link delete "$BRIDGE" 2>/dev/null || true
ip link delete "$SINK" 2>/dev/null || true
if [[ -f "$NODE_DIR/sysctl.saved" ]]; then
  while IFS= read -r setting; do sysctl -qw "$setting" || true; done <"$NODE_DIR/sysctl.saved"
  rm -f "$NODE_DIR/sysctl.saved"
fi
rm -rf "$RUN_DIR"
if [[ "${1:-}" == --delete ]]; then
  rm -rf "$NODE_DIR"
fi
say "node $NODE_NAME stopped"
