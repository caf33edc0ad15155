#!/usr/bin/env bash
# The local cluster's running example, on its real node (hack/cluster-up.sh runs this last):
# the chart (release `labelloop` in labelloop-system, hack/local-values.yaml: the images built
# here, watching the namespace labelloop-local) and examples/local/ (PostgreSQL and a managed
# AnnotationProject with two Label Studio replicas). Idempotent; returns without waiting for
# the pods (the first Label Studio start runs its migrations for a minute or two).
set -euo pipefail
# shellcheck source=hack/node-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

NAMESPACE=labelloop-local
kube() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }

say "installing the images on the node (hack/images.sh)"
"$ROOT/hack/images.sh"

# The chart installs its CRDs only once; the checkout's may be newer.
kube apply --server-side --force-conflicts -f "$ROOT/crds/" >/dev/null
kube apply -f "$ROOT/examples/local/00-namespace.yaml" >/dev/null
# The operator's namespace enforces the restricted Pod Security Standard too, as a platform
# team's would: the chart's pods must be admitted under it.
kube create namespace labelloop-system --dry-run=client -o yaml | kube apply --server-side -f - >/dev/null
kube label --overwrite namespace labelloop-system \
  pod-security.kubernetes.io/enforce=restricted >/dev/null

say "installing the chart (release labelloop in labelloop-system, hack/local-values.yaml)"
# The local images keep their tag (`local`) from build to build, so a rebuilt operator image
# would not replace the running pods: its content key in the pods' annotations does.
"$TOOLS_BIN/helm" --kubeconfig "$KUBECONFIG_OUT" upgrade --install labelloop \
  "$ROOT/charts/labelloop" --namespace labelloop-system --create-namespace \
  -f "$ROOT/hack/local-values.yaml" \
  --set-string "podAnnotations.labelloop\.io/image-key=$(cat "$ROOT/.cache/images/stamps/operator")" \
  >/dev/null

# PostgreSQL's credentials: drawn once, never written into a file of the checkout.
if ! kube get secret reviews-postgres -n "$NAMESPACE" >/dev/null 2>&1; then
  kube create secret generic reviews-postgres -n "$NAMESPACE" \
    --from-literal=host="reviews-postgres.$NAMESPACE.svc" --from-literal=port=5432 \
    --from-literal=database=labelstudio --from-literal=username=labelstudio \
    --from-literal=password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
fi
say "applying examples/local/ (PostgreSQL, a managed AnnotationProject with two replicas)"
kube apply -f "$ROOT/examples/local/" >/dev/null
