# Shared by hack/cluster-up.sh and hack/cluster-down.sh (sourced, not run).
#
# The local control plane is a kwokctl "binary runtime" cluster: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok as plain processes. All its state lives in
# this checkout's .cluster/, so clones on one machine never share or clash.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${TOOLS_BIN:-$ROOT/.cache/bin}"
CLUSTER_NAME=labelloop
STATE="$ROOT/.cluster"
KUBECONFIG_OUT="$STATE/kubeconfig"
# kwokctl keeps everything under $KWOK_WORKDIR (default ~/.kwok).
export KWOK_WORKDIR="$STATE/kwok"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER_NAME"

say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

kwokctl() { "$TOOLS_BIN/kwokctl" --name "$CLUSTER_NAME" "$@"; }

# kwokctl trusts its pid files. After a reboot a recorded pid may belong to an unrelated
# process, which kwokctl would then take for ours: never restart it, and kill it on stop.
# Keep a pid file only while that pid still runs the component's own binary.
prune_stale_pids() {
  local pidfile pid exe
  for pidfile in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid="$(<"$pidfile")"
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    exe="${exe% (deleted)}" # still ours when the binary was rebuilt under it
    if [[ -z "$exe" || "$exe" != "$(readlink -f "$CLUSTER_DIR/bin/$(basename "$pidfile" .pid)")" ]]; then
      rm -f "$pidfile"
    fi
  done
}
