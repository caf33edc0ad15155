#!/usr/bin/env bash
# Starts the local cluster's real node, `real-0` (see hack/node-lib.sh), and waits until it is
# Ready. hack/cluster-up.sh runs it once the control plane answers; it can be run again at any
# time: what runs is left alone, what does not is started.
set -euo pipefail
# shellcheck source=hack/node-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

for tool in kubelet kube-proxy kube-router coredns crictl; do
  [[ -x "$TOOLS_BIN/$tool" ]] || { say "missing $TOOLS_BIN/$tool: run 'make tools'"; exit 1; }
done
for tool in containerd runc iptables ipset ip /usr/lib/cni/bridge; do
  command -v "$tool" >/dev/null || { say "missing $tool: run 'make tools'"; exit 1; }
done
[[ -f "$KUBECONFIG_OUT" ]] || { say "no control plane: run hack/cluster-up.sh"; exit 1; }

mkdir -p "$NODE_DIR"/{pids,logs,cni,cni-ipam,kubelet,containerd} "$RUN_DIR"

# A daemon's configuration is rewritten only when it changed, and then the daemon restarts:
# kube-proxy exits when its file is touched, and the others would keep the old settings.
CHANGED=()
write_config() { # path; the content on stdin
  local path=$1
  cat >"$path.new"
  if cmp -s "$path.new" "$path"; then
    rm -f "$path.new"
  else
    mv "$path.new" "$path"
    CHANGED+=("$path")
  fi
}

# 9>&-: daemons must not inherit (and so hold) cluster-up's lock.
start_daemon() { # name config command...
  local name=$1 config=$2
  shift 2
  if [[ " ${CHANGED[*]} " == *" $config "* ]]; then
    stop_daemon "$name"
  fi
  node_pid "$name" >/dev/null && return 0
  setsid "$@" >"$NODE_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$NODE_DIR/pids/$name.pid"
}

wait_for() { # what seconds test...
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "$what did not come up; its log ends:"
      tail -n 20 "$NODE_DIR/logs/$what.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

# Pods reach Services through kube-proxy's rules on this host, including pods on the same
# bridge (br_netfilter), and the host forwards between the bridge's ports. The values before
# the first start are kept, and hack/node-down.sh puts them back.
if [[ ! -f "$NODE_DIR/sysctl.saved" ]]; then
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    echo "$key=$(sysctl -n "$key")"
  done >"$NODE_DIR/sysctl.saved"
fi
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
fi
ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
if ! ip link show "$SINK" >/dev/null 2>&1; then
  ip link add "$SINK" type bridge
fi
ip link set "$SINK" up
ip route replace "$SERVICE_CIDR" dev "$SINK"
ip route replace "$FAKE_POD_CIDR" dev "$SINK"

write_config "$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd"
state = "$RUN_DIR/containerd"
# Snapshotters this machine has no use for only add noise to the log.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$RUN_DIR/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM has no CAP_SYS_RESOURCE: lowering a process's oom_score_adj below its parent's
  # fails, and every sandbox would die with it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF

# One bridge, addresses from one /24, no masquerading, and no default route in the pods: they
# reach each other, this host and the Service range, and nothing leaves the machine.
write_config "$NODE_DIR/cni/10-labelloop.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "labelloop",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}],
        "dataDir": "$NODE_DIR/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

say "starting containerd ($(containerd --version | awk '{print $3}'))"
start_daemon containerd "$NODE_DIR/containerd.toml" containerd --config "$NODE_DIR/containerd.toml"
wait_for containerd 30 ctr_k8s version

if [[ -z "$(ctr_k8s images ls -q "name==$PAUSE_IMAGE")" ]]; then
  say "loading the pause image"
  "$ROOT/hack/images.sh" pause
fi

# The kubelet serves logs and exec to the API server on the node's address only. It accepts
# any caller there: the address lives on this machine's bridge, where only this cluster is.
write_config "$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
# The VM mounts cgroup v1 hierarchies; kubelets since 1.35 refuse them unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $NODE_DIR/resolv.conf
registerWithTaints:
- {key: $NODE_TAINT_KEY, value: "$NODE_TAINT_VALUE", effect: $NODE_TAINT_EFFECT}
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
serializeImagePulls: false
# Local images only (nothing can be pulled here), so they must never be garbage-collected.
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
maxPods: 60
EOF
: >"$NODE_DIR/resolv.conf" # pods with dnsPolicy Default get no name servers: no way out

say "starting the kubelet on $NODE_IP"
start_daemon kubelet "$NODE_DIR/kubelet.yaml" "$TOOLS_BIN/kubelet" \
  --config="$NODE_DIR/kubelet.yaml" \
  --kubeconfig="$KUBECONFIG_OUT" \
  --root-dir="$NODE_DIR/kubelet" \
  --hostname-override="$NODE_NAME" \
  --node-ip="$NODE_IP" \
  --node-labels="$NODE_LABEL"

write_config "$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection: {kubeconfig: $KUBECONFIG_OUT}
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
EOF
say "starting kube-proxy (iptables)"
start_daemon kube-proxy "$NODE_DIR/kube-proxy.yaml" "$TOOLS_BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml"

# Cluster names only; anything else is NXDOMAIN, since no name outside the cluster is needed.
write_config "$NODE_DIR/Corefile" <<EOF
$CLUSTER_DOMAIN:53 in-addr.arpa:53 {
  bind $NODE_IP
  errors
  kubernetes $CLUSTER_DOMAIN in-addr.arpa {
    kubeconfig $KUBECONFIG_OUT
    pods insecure
    fallthrough in-addr.arpa
  }
  cache 5
}
.:53 {
  bind $NODE_IP
  template ANY ANY {
    rcode NXDOMAIN
  }
}
EOF
say "starting CoreDNS on $NODE_IP:53"
start_daemon coredns "$NODE_DIR/Corefile" "$TOOLS_BIN/coredns" -conf "$NODE_DIR/Corefile"

wait_for kubelet 120 kubectl --kubeconfig "$KUBECONFIG_OUT" wait --for=condition=Ready \
  "node/$NODE_NAME" --timeout=2s

# NetworkPolicy: the bridge plugin ignores it, so kube-router's firewall alone (its router and
# service proxy stay off: the bridge and kube-proxy do those jobs) guards each pod of this node
# with iptables chains and ipsets built from the policies; a refused connection is rejected.
# It lets everything from this host through to the pods: the kubelet's probes, the API
# server's proxy and the tests. It reads its node's InternalIP, so it starts once the node has
# registered. Its health and metrics servers stay off (they would listen on every address).
# Its flags are its configuration file: a changed flag restarts it.
write_config "$NODE_DIR/kube-router.args" <<EOF
--kubeconfig=$KUBECONFIG_OUT
--hostname-override=$NODE_NAME
--run-firewall=true
--run-router=false
--run-service-proxy=false
--enable-cni=false
--service-cluster-ip-range=$SERVICE_CIDR
--health-port=0
--metrics-port=0
EOF
mapfile -t kube_router_args <"$NODE_DIR/kube-router.args"
say "starting kube-router (NetworkPolicy firewall)"
start_daemon kube-router "$NODE_DIR/kube-router.args" "$TOOLS_BIN/kube-router" "${kube_router_args[@]}"
# Up when its chain is in the path of forwarded packets.
firewall_up() {
  node_pid kube-router && iptables -w -S FORWARD | awk '/-j KUBE-ROUTER-FORWARD$/ {up = 1} END {exit !up}'
}
wait_for kube-router 60 firewall_up
say "node $NODE_NAME Ready"
