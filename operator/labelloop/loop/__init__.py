"""Pure policy shared by the operator and the local runner: triggers, gates, rollouts, ordering."""
