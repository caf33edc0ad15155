#!/usr/bin/env bash
# Builds the local cluster's binaries from the official Go modules, once.
#
# kube-apiserver, kube-controller-manager, kube-scheduler, and the real node's kubelet and
# kube-proxy live in k8s.io/kubernetes, whose
# go.mod pins every k8s.io/* staging module at v0.0.0 with `replace => ./staging/...`, so
# `go install k8s.io/kubernetes/cmd/...@vX` is refused. We build them from a small wrapper
# module that requires k8s.io/kubernetes and replaces each staging module with its published
# v0.Y.Z twin; the list is generated from that release's own go.mod. etcd is built the same
# way. kwok, kwokctl, helm, CoreDNS and kube-router have no replace lines and `go install` as
# they are (kube-router is the real node's NetworkPolicy firewall, see hack/node-up.sh).
# kstatus is labelloop's own small tool (hack/kstatus/, its own go.mod).
#
# Everything lands in $TOOLS_BIN (default .cache/bin, git-ignored). A tool already built at
# the pinned version is skipped, so a second run costs nothing.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${TOOLS_BIN:-$ROOT/.cache/bin}"
WORK="$ROOT/.cache/build"
mkdir -p "$TOOLS_BIN" "$WORK"

say() { printf '[cluster-tools] %s\n' "$*" >&2; }

# A stamp file per tool records the version it was built at.
built() { [[ -x "$TOOLS_BIN/$1" && "$(cat "$TOOLS_BIN/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$TOOLS_BIN/.$1.version"; }

build_kubernetes() {
  local missing=() b
  for b in "${K8S_COMMANDS[@]}"; do built "$b" "$K8S_VERSION" || missing+=("$b"); done
  ((${#missing[@]})) || return 0
  say "building ${missing[*]} $K8S_VERSION" \
    "(first build: 10-25 min on 2 cores; later builds reuse Go's cache)"
  local dir="$WORK/kubernetes-$K8S_VERSION" staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "$dir"
  local upstream_mod
  upstream_mod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module labelloop.local/kubernetes-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.Y.Z`.
    sed -n 's#^\t\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$upstream_mod"
    echo ")"
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for b in "${K8S_COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
    printf ')\n'
  } >"$dir/tools.go"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$dir/tidy.log" || { cat "$dir/tidy.log" >&2; exit 1; })
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 \
    -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  (cd "$dir" && go build -ldflags "$ldflags" -o "$TOOLS_BIN/" "${missing[@]/#/k8s.io/kubernetes/cmd/}")
  for b in "${missing[@]}"; do stamp "$b" "$K8S_VERSION"; done
}

build_etcd() {
  built etcd "$ETCD_VERSION" && return
  say "building etcd $ETCD_VERSION"
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module labelloop.local/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >/dev/null && go build -ldflags "-s -w" -o "$TOOLS_BIN/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD_VERSION"
}

go_install() { # name module@version
  built "$1" "${2##*@}" && return
  say "installing $2"
  GOBIN="$TOOLS_BIN" nice -n 10 go install -ldflags "-s -w" "$2"
  stamp "$1" "${2##*@}"
}

# labelloop's own reader of GitOps health (hack/kstatus/): kstatus, and Flux's CEL health
# checks. Its version is a hash of its sources, so an edit rebuilds it.
build_kstatus() {
  local src="$ROOT/hack/kstatus" version
  version="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)"
  built kstatus "$version" && return
  say "building kstatus from hack/kstatus"
  (cd "$src" && go build -ldflags "-s -w" -o "$TOOLS_BIN/kstatus" .)
  stamp kstatus "$version"
}

# The real node's runtime and the image builder come from Debian's packages: containerd 1.6
# (Kubernetes 1.36 prefers 2.x, but 1.6's CRI runs its pods, and a maintained package beats a
# runtime built from source), runc, the CNI plugins, iptables for kube-proxy, ipset for
# kube-router's firewall, and buildah and debootstrap for hack/images.sh.
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack ipset buildah debootstrap)
install_node_packages() {
  local missing=() package
  for package in "${NODE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# `build-cluster-tools.sh kstatus` builds that one alone (the GitOps status tests need it).
if [[ "${1:-}" == kstatus ]]; then
  build_kstatus
  exit
fi
install_node_packages
build_kubernetes
build_etcd
go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
go_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
go_install crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
go_install kube-router "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
build_kstatus
say "all tools in $TOOLS_BIN"
