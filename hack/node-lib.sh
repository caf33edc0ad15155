# shellcheck shell=bash disable=SC2034 # (the scripts that source this use its variables)
# The real node of the local cluster, shared by hack/node-up.sh and hack/node-down.sh.
#
# One node, `real-0`, runs real containers beside kwok's fake nodes: containerd (Debian's
# package) with runc, the CNI bridge, host-local, portmap and loopback plugins, the kubelet and
# kube-proxy (iptables) built from k8s.io/kubernetes, and CoreDNS, all as processes of this
# checkout with their state in .cluster/node/. Every address stays on this machine: pods live
# on the bridge below and nothing is routed or masqueraded out of it.

# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

NODE_NAME=real-0
NODE_DIR="$STATE/node"
# Unix sockets have a 108-byte limit, so runtime sockets live under a short /run path that is
# still this checkout's own.
RUN_DIR="/run/labelloop-$(printf '%s' "$ROOT" | sha1sum | cut -c1-8)"
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
BRIDGE=llcni0
# The bridge's address is the node's InternalIP, the pods' gateway and CoreDNS's address.
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
# kwok gives its fake pods addresses from here. No process answers at them, yet they appear in
# Services' endpoints, which kube-proxy programs on this host.
FAKE_POD_CIDR=10.245.0.0/16
# Both ranges route into this bridge without ports, where what arrives finds no neighbour and
# is dropped: a packet to a Service without a rule, or to a fake pod, stays on this machine
# instead of taking the default route. (Packets kube-proxy rewrites are routed again first, so
# the host still reaches Services.)
SINK=llsink0
CLUSTER_DOMAIN=cluster.local
# Real workloads opt in to the node with this label and a toleration of this taint, so the
# kwok nodes keep every other pod (their pods never start a process).
NODE_LABEL=labelloop.io/node-type=real
NODE_TAINT_KEY=labelloop.io/real-node
NODE_TAINT_VALUE="true"
NODE_TAINT_EFFECT=NoSchedule
# The sandbox image the kubelet and containerd ask for; hack/images.sh builds it.
PAUSE_IMAGE=registry.k8s.io/pause:3.10

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# `name` runs as a daemon of this checkout when its pid file names a live process.
node_pid() { local f="$NODE_DIR/pids/$1.pid"; [[ -f $f ]] && kill -0 "$(<"$f")" 2>/dev/null && cat "$f"; }

# SIGTERM, then SIGKILL after ten seconds.
stop_daemon() { # name
  local pid
  pid="$(node_pid "$1")" || { rm -f "$NODE_DIR/pids/$1.pid"; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$NODE_DIR/pids/$1.pid"
}

# Lazily unmounts every mount under the given directories, the deepest first. awk, not grep:
# no mount left is the usual case, and grep's "no match" status would end a `set -e -o pipefail`
# script with an error.
unmount_under() { # dir...
  local dir
  for dir in "$@"; do
    findmnt -rn -o TARGET | awk -v dir="${dir%/}/" 'index($0, dir) == 1'
  done | sort -ru | while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done
}
