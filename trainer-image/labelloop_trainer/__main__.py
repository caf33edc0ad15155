"""`python -m labelloop_trainer` (also what `torchrun -m labelloop_trainer` runs)."""

from labelloop_trainer.cli import main

raise SystemExit(main())
