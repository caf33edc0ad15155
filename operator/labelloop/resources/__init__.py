"""Pure builders: a spec in, the Kubernetes manifests the operator wants to exist out (table-tested)."""
