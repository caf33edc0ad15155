"""Hyperparameter search inside one run (`spec.tuning`): trials, one after another.

Optuna's TPE sampler (a Bayesian optimiser over the search space) proposes each trial's
learning rate (log scale), LoRA rank (alpha keeping its ratio to the rank), epochs and,
when the space lists some, batch size; everything else is the run's configuration. Each
trial is an ordinary training run (`loop.train`) with the run's data, split and early
stopping, scored by the objective on the held-out split, and told to the sampler; the best
trial's model, already in memory, becomes the version. Seeded with `hyperparameters.seed`,
the same data gives the same trials.

A trial that fails (out of memory, a loss that turns NaN, any error of the run itself) is
recorded with its error and the search goes on. Bad input or an existing version would fail
every trial alike, so they end the run at once (exit 2 or 3), and a search none of whose
trials completed fails (exit 1).

Each trial keeps checkpoints of its own (`<version>.trial-<n>`): a restarted pod asks the
sampler again, gets the same trials, finds the finished ones complete on disk (their last
epoch saved) and resumes the unfinished one. They are removed with the version's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from labelloop_trainer.errors import TrainerError
from labelloop_trainer.training import scores
from labelloop_trainer.training.distributed import Context
from labelloop_trainer.training.loop import Outcome, prepare, train
from labelloop_trainer.training.progress import Progress
from labelloop_trainer.training.settings import TrainConfig, Tuning


@dataclass(frozen=True)
class Trial:
    """One trial: what it tried and how it went."""

    number: int
    params: dict[str, float]
    state: str
    """`complete` or `failed`."""
    score: float | None = None
    best_epoch: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        found = {
            "number": self.number,
            "params": self.params,
            "state": self.state,
            "score": None if self.score is None else round(self.score, 6),
            "bestEpoch": self.best_epoch,
            "error": self.error,
        }
        return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True)
class SearchResult:
    """The best trial's outcome and configuration, and every trial."""

    best: Outcome
    config: TrainConfig
    """The best trial's configuration: the run's, with its parameters."""
    best_trial: int
    objective: str
    trials: tuple[Trial, ...]

    def to_json(self) -> dict[str, Any]:
        """For the version's `metrics.json`: every trial."""
        return {
            "sampler": "optuna TPE",
            "seed": self.config.hyper.seed,
            "objective": self.objective,
            "bestTrial": self.best_trial,
            "trials": [t.to_json() for t in self.trials],
        }

    def summary(self) -> dict[str, Any]:
        """For the result line and the FineTuneJob's `status.tuning` (`TuningSummary`)."""
        best = self.trials[self.best_trial]
        return {
            "objective": self.objective,
            "trials": len(self.trials),
            "failed": sum(t.state == "failed" for t in self.trials),
            "bestTrial": self.best_trial,
            "bestScore": best.to_json()["score"],
            "bestParameters": best.params,
        }


def trial_work_name(version: str, number: int) -> str:
    """The checkpoints' directory name of trial `number`."""
    return f"{version}.trial-{number}"


def search(cfg: TrainConfig, ctx: Context, progress: Progress) -> SearchResult:
    """Run `cfg.tuning`'s trials; the best one's outcome (every process returns it)."""
    import optuna

    tuning = cfg.tuning
    assert tuning is not None
    objective = scores.canonical(tuning.objective)
    up = scores.higher_is_better(objective)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if up else "minimize",
        sampler=optuna.samplers.TPESampler(seed=cfg.hyper.seed),
    )
    version = prepare(cfg).version  # every trial writes toward this one version
    trials: list[Trial] = []
    best: tuple[float, int, Outcome, TrainConfig] | None = None
    for number in range(tuning.trials):
        proposal = study.ask()
        params = _suggest(proposal, tuning)
        trial_cfg = _with(cfg, params, version)
        progress.event("trial", number=number, of=tuning.trials, params=params)
        try:
            outcome = train(trial_cfg, ctx, progress, work_name=trial_work_name(version, number))
            value = scores.scalars(outcome.metrics).get(objective, math.nan)
            if not math.isfinite(value):
                raise ValueError(f"objective {objective} is {value} (not computed, or not finite)")
        except TrainerError:
            raise  # bad data or settings, or the version exists: every trial would fail alike
        except Exception as err:  # a failed trial is an outcome of the search
            study.tell(proposal, state=optuna.trial.TrialState.FAIL)
            trials.append(Trial(number, params, "failed", error=f"{type(err).__name__}: {err}"))
            progress.event("trialFailed", number=number, error=trials[-1].error)
            continue
        study.tell(proposal, value)
        trials.append(Trial(number, params, "complete", value, outcome.best_epoch))
        progress.event("trialDone", number=number, score=round(value, 6))
        if best is None or (value > best[0] if up else value < best[0]):
            best = (value, number, outcome, trial_cfg)
    if best is None:
        raise TrainerError(f"every one of the {tuning.trials} trials failed: {trials[-1].error}")
    _, number, outcome, trial_cfg = best
    return SearchResult(outcome, trial_cfg, number, objective, tuple(trials))


def _suggest(proposal: Any, tuning: Tuning) -> dict[str, float]:
    """The trial's parameters; a dimension with one choice is not searched."""
    low, high = tuning.learning_rate
    params: dict[str, float] = {
        "learning_rate": proposal.suggest_float("learning_rate", low, high, log=True)
        if low < high
        else low
    }
    for name, choices in (
        ("lora_r", tuning.lora_r),
        ("epochs", tuning.epochs),
        ("batch_size", tuning.batch_size),
    ):
        if len(choices) > 1:
            params[name] = proposal.suggest_categorical(name, list(choices))
        elif choices:
            params[name] = choices[0]
    return params


def _with(cfg: TrainConfig, params: dict[str, float], version: str) -> TrainConfig:
    """`cfg` with a trial's parameters, writing toward `version`."""
    hyper = dataclasses.replace(
        cfg.hyper,
        learning_rate=params["learning_rate"],
        epochs=int(params["epochs"]) if "epochs" in params else cfg.hyper.epochs,
        batch_size=int(params["batch_size"]) if "batch_size" in params else cfg.hyper.batch_size,
    )
    lora = cfg.lora
    if "lora_r" in params:
        rank = int(params["lora_r"])
        lora = dataclasses.replace(lora, r=rank, alpha=max(1, round(rank * lora.alpha / lora.r)))
    return dataclasses.replace(cfg, hyper=hyper, lora=lora, model_version=version)
