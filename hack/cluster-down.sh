#!/usr/bin/env bash
# Stops the local cluster started by hack/cluster-up.sh: the real node first (hack/node-down.sh
# leaves no process, mount or interface behind), then the control plane, keeping its state
# (etcd data, certificates) so that cluster-up brings it back as it was. With --delete, removes
# the state and the kubeconfig too. Harmless when no cluster exists or none runs.
set -euo pipefail
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

case "${1:-}" in
  "") action=stop ;;
  --delete) action=delete ;;
  *) echo "usage: $0 [--delete]" >&2; exit 2 ;;
esac

if [[ ! -f "$CLUSTER_DIR/kwok.yaml" ]]; then
  say "no cluster '$CLUSTER_NAME' here: nothing to do"
  exit 0
fi
if [[ ! -x "$TOOLS_BIN/kwokctl" ]]; then
  say "missing $TOOLS_BIN/kwokctl: run 'make tools'"
  exit 1
fi

lock_cluster
"$ROOT/hack/node-down.sh" ${1:+"$1"}
prune_stale_pids
LOG="$STATE/kwokctl.log"
if [[ "$action" == delete ]]; then
  say "deleting cluster '$CLUSTER_NAME' and its state"
  kwokctl delete cluster >"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; exit 1; }
  rm -f "$KUBECONFIG_OUT"
else
  say "stopping cluster '$CLUSTER_NAME' (state kept; --delete removes it)"
  kwokctl stop cluster >"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; exit 1; }
fi
