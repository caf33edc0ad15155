# shellcheck shell=bash disable=SC2034 # (the scripts that source this use its variables)
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

# 9>&-: the daemons kwokctl starts must not inherit (and so hold) the lock below.
kwokctl() { "$TOOLS_BIN/kwokctl" --name "$CLUSTER_NAME" "$@" 9>&-; }

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

# One cluster-up or cluster-down at a time per checkout: parallel test sessions both call it.
lock_cluster() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    say "waiting for another cluster-up/cluster-down in this checkout"
    flock 9
  fi
}
