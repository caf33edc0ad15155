#!/usr/bin/env bash
# Starts the local cluster and writes the admin kubeconfig to .cluster/kubeconfig: the control
# plane, kwok's fake nodes (hack/nodes.yaml, stages in hack/kwok-stages.yaml) and one real
# node that runs containers (hack/node-up.sh; LABELLOOP_REAL_NODE=0 leaves it out).
#
# Run it any time. A cluster that runs and answers is left alone (a few seconds); a stopped one
# (dead processes, a reboot) is restarted; one that will not come back, or whose configuration
# changed, is recreated. Only the binaries in .cache/bin are used: nothing is downloaded.
set -euo pipefail
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

CONFIG="$STATE/kwokctl.yaml"
STAGES="$ROOT/hack/kwok-stages.yaml"
NODES="$ROOT/hack/nodes.yaml"
VOLUMES_DIR="$STATE/volumes"
VOLUME_COUNT=16
LOG="$STATE/kwokctl.log"
# Lives in the cluster's own directory, so it goes when kwokctl deletes the cluster.
FINGERPRINT="$CLUSTER_DIR/labelloop-config.sha256"

for tool in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl; do
  [[ -x "$TOOLS_BIN/$tool" ]] || { say "missing $TOOLS_BIN/$tool: run 'make tools'"; exit 1; }
done
command -v kubectl >/dev/null || { say "kubectl is not on PATH"; exit 1; }
lock_cluster

# Every binary is named, so kwokctl never reaches for its download defaults.
cat >"$CONFIG" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  # etcd has no authentication: listen on loopback only.
  bindAddress: 127.0.0.1
  # Pods on the real node reach the API server at the kubernetes Service (the first address of
  # the Service range) and at the node's address, so its certificate must name both.
  kubeApiserverCertSANs: [$KUBERNETES_SERVICE_IP, $NODE_IP]
  etcdBinary: $TOOLS_BIN/etcd
  kubeApiserverBinary: $TOOLS_BIN/kube-apiserver
  kubeControllerManagerBinary: $TOOLS_BIN/kube-controller-manager
  kubeSchedulerBinary: $TOOLS_BIN/kube-scheduler
  kwokControllerBinary: $TOOLS_BIN/kwok
# A restarted component must not wait for its predecessor's lease to expire: with leases,
# kwok would leave every pod untouched for up to 200 s after a restart, and the controller
# manager and scheduler would idle for 15 s. One instance of each needs no election.
componentsPatches:
- name: kwok-controller
  extraArgs:
  # Only the fake nodes (annotated in hack/nodes.yaml); the real node reports for itself.
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
  # No node leases; the node-heartbeat stage keeps the nodes Ready instead.
  - {key: node-lease-duration-seconds, value: "0", override: true}
  # kwok reports this as each node's InternalIP and each pod's hostIP; kwokctl leaves it empty.
  - {key: node-ip, value: 127.0.0.1, override: true}
  - {key: cidr, value: $FAKE_POD_CIDR}
- name: kube-controller-manager
  extraArgs:
  - {key: leader-elect, value: "false"}
  - {key: service-cluster-ip-range, value: $SERVICE_CIDR}
  # Its client's default 20 requests a second made the Job and Deployment controllers the
  # bottleneck of bench-operator: a thousand Jobs, each a pod and a few status writes, took
  # five minutes to finish on kwok.
  - {key: kube-api-qps, value: "200"}
  - {key: kube-api-burst, value: "400"}
- name: kube-apiserver
  extraArgs:
  # A /16: a thousand objects with a Service each do not fit in the default /24.
  - {key: service-cluster-ip-range, value: $SERVICE_CIDR}
  # The real node's pods reach it through the kubernetes Service, whose endpoint is this
  # address; it listens on every address of the host (clients still need its certificates).
  - {key: bind-address, value: 0.0.0.0, override: true}
  - {key: advertise-address, value: $NODE_IP}
  # logs and exec go to the kubelet at the node's InternalIP (no DNS for node names here).
  - {key: kubelet-preferred-address-types, value: InternalIP}
- name: kube-scheduler
  extraArgs:
  - {key: leader-elect, value: "false"}
EOF
fingerprint="$(cat "$CONFIG" "$STAGES" | sha256sum | cut -d' ' -f1)"

api_ready() { kubectl --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz >/dev/null 2>&1; }

# A stopped cluster's ports may since have gone to another process (say, a cluster in another
# clone): restarting on them would hang, so such a cluster is recreated on free ports instead.
ports_taken() {
  local port
  compgen -G "$CLUSTER_DIR/pids/*.pid" >/dev/null && return 1 # partly running: ports are ours
  while read -r port; do
    (: <>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
  done < <(sed -n 's/^  [A-Za-z]*Port: \([0-9][0-9]*\)$/\1/p' "$CLUSTER_DIR/kwok.yaml")
  return 1
}

fail() {
  say "$1; kwokctl's log (${LOG#"$ROOT/"}) ends:"
  tail -n 20 "$LOG" >&2
  say "component logs: ${CLUSTER_DIR#"$ROOT/"}/logs/"
  exit 1
}

delete_cluster() {
  prune_stale_pids
  kwokctl delete cluster >>"$LOG" 2>&1 || fail "kwokctl could not delete the cluster"
}

# kwokctl creates the cluster, or starts whatever of it is not running; it answers at once when
# all its processes run. A cold start takes seconds: the limits only bound a start that hangs
# (say, a port taken by another cluster while this one was down), which then gets recreated.
start_cluster() {
  prune_stale_pids
  kwokctl create cluster -c "$CONFIG" -c "$STAGES" --kubeconfig "" --wait 1m --timeout 2m \
    >>"$LOG" 2>&1 || return 1
  echo "$fingerprint" >"$FINGERPRINT"
  # Self-contained (certificates inline), with a context named after the cluster.
  kubectl config view --raw --flatten --kubeconfig "$CLUSTER_DIR/kubeconfig.yaml" \
    >"$KUBECONFIG_OUT.tmp" \
    && kubectl config rename-context --kubeconfig "$KUBECONFIG_OUT.tmp" \
      "kwok-$CLUSTER_NAME" "$CLUSTER_NAME" >/dev/null \
    && mv "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT" || return 1
  local deadline=$((SECONDS + 60))
  until api_ready; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

: >"$LOG"
prune_stale_pids
if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
  if [[ "$(cat "$FINGERPRINT" 2>/dev/null)" != "$fingerprint" ]]; then
    say "the cluster's configuration changed: recreating it"
    delete_cluster
  elif ports_taken; then
    say "another process took the stopped cluster's ports: recreating it"
    delete_cluster
  fi
fi
if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
  say "checking cluster '$CLUSTER_NAME' (restarting what is not running)"
else
  say "creating cluster '$CLUSTER_NAME' in ${CLUSTER_DIR#"$ROOT/"}"
fi
if ! start_cluster; then
  say "the cluster did not come up: recreating it"
  delete_cluster
  start_cluster || fail "the cluster did not come up"
fi

say "applying fake nodes (hack/nodes.yaml)"
kubectl --kubeconfig "$KUBECONFIG_OUT" apply -f "$NODES" >/dev/null
kubectl --kubeconfig "$KUBECONFIG_OUT" wait --for=condition=Ready -f "$NODES" --timeout=60s >/dev/null

# A pool of volumes, since the cluster has no storage provisioner: a claim without a
# storageClassName binds to one of these directories of the checkout, which the real node's
# pods really read and write (kwok's pods never touch theirs). A volume whose claim was
# deleted is wiped and offered again at the next start.
say "local volume pool: $VOLUME_COUNT volumes in ${VOLUMES_DIR#"$ROOT/"}"
for i in $(seq "$VOLUME_COUNT"); do
  mkdir -p "$VOLUMES_DIR/pv-$i"
  chmod 0777 "$VOLUMES_DIR/pv-$i" # pods run as their images' own non-root users
  cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-pv-$i, labels: {labelloop.io/local-volume: "true"}}
spec:
  capacity: {storage: 1Ti}
  accessModes: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $VOLUMES_DIR/pv-$i}
EOF
done | kubectl --kubeconfig "$KUBECONFIG_OUT" apply -f - >/dev/null
kubectl --kubeconfig "$KUBECONFIG_OUT" get pv -l labelloop.io/local-volume=true \
  -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}' \
  | while read -r volume; do
    find "$VOLUMES_DIR/pv-${volume#local-pv-}" -mindepth 1 -delete
    kubectl --kubeconfig "$KUBECONFIG_OUT" patch pv "$volume" --type json \
      -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null
  done

if [[ "${LABELLOOP_REAL_NODE:-1}" != 0 ]]; then
  "$ROOT/hack/node-up.sh"
  "$ROOT/hack/local-env.sh"
fi

server="$(kubectl --kubeconfig "$KUBECONFIG_OUT" config view -o jsonpath='{.clusters[0].cluster.server}')"
say "ready: $server, kubeconfig ${KUBECONFIG_OUT#"$ROOT/"}"
