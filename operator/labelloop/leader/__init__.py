"""Leader election over a coordination.k8s.io Lease: of the operator's replicas, one acts.

The pattern of client-go and controller-runtime, in three small modules:

- `policy`: the pure decisions (renew, take over, step down, wait) from the Lease's fields, what
  this candidate saw and when, and its own clock; and the Lease specs it writes. Table-tested.
- `lease`: the Lease API (read, create, replace with the resourceVersion read, so that of two
  candidates racing the API server lets exactly one win).
- `elector`: the loops around them, and `leadership`, which `labelloop.operator` wraps around
  kopf: it waits as a standby (its liveness endpoint answering) until it holds the Lease,
  renews it while kopf runs, and releases it when kopf has stopped.

This package imports nothing from its modules, so that the command line can read the timing
defaults (`policy`) without loading the Kubernetes client.
"""
