"""The loop on one machine: `labelloop run` and `labelloop demo`.

The same manifests a cluster takes, with Label Studio, the trainer and the prelabel server run
as local processes, and every decision (when a round starts, which version passes its gate,
how a version rolls out or back, which tasks come first) taken by `labelloop.loop`, the
operator's own decision code.
"""
