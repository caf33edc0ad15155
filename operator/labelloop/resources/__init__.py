"""Pure builders: a spec in, the manifests the operator wants to exist out (table-tested)."""
