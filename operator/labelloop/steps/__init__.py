"""The steps that talk to Label Studio for one project, shared by the operator and the local
runner.

Each step is a plain function (or, for the prelabel pass, a function and the cache its caller
owns) that takes a `LabelStudioClient` and returns a typed outcome. Nothing here knows kopf or
Kubernetes: the operator's project pass (`controllers/project_sync.py`) turns the outcomes
into status, conditions and Events; the local runner (`local/runner.py`) into lines it prints.

- `project`: the project, created once and kept as the spec says; `spec.data` read, and each
  row imported once;
- `webhook`: the project's one webhook to the operator's receiver, with its secret header;
- `review`: the Data Manager views (annotator tiers, disagreements with confident prelabels);
- `prelabel`: the serving version as the project's one ML backend, and one prelabel pass in
  active-learning order (with the answer cache its caller owns).

Decisions stay in `loop/` (pure, no I/O); what to do with Kubernetes stays in `controllers/`.
"""
