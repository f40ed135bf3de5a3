"""The search controllers as custom ``keras_tuner.Oracle`` subclasses.

Each controller proposes a value dict of an `accelnas.space.search_space.SearchSpace` (one ``hp.Choice`` per
decision, ``s<i>_<decision>``) in `populate_space`; the tuner trains it and reports the reward,
which the base class keeps as the trial's score (objective ``reward``, maximised).

- `RandomOracle`: uniform samples of the space (the baseline).
- `EvolutionOracle`: regularized (aging) evolution (Real et al. 2019): the first ``population``
  trials are random; afterwards a tournament of ``sample_size`` members of the newest
  ``population`` completed trials picks the best, whose one decision is mutated to another value.
  The oldest member leaves the population as each new one arrives (aging, not the worst).
- `PolicyGradientOracle`: a MnasNet-style controller: independent categorical distributions
  (logits) over the choices of every decision, updated with REINFORCE after each batch of
  ``population`` completed trials, with a moving-average reward baseline and advantages scaled
  by the spread of the rewards seen so far.

Determinism and resume. Every proposal is a pure function of ``(seed, trial number, attempt)``
and the results of the trials completed before it (the policy is re-derived by replaying them in
completion order), so the same params + seed give the same proposals, and a search reloaded from
disk (keras-tuner ``overwrite=False``) continues exactly where it stopped; the trial in flight when
it was killed is run again with its values. In distributed mode the completion order depends on
the workers' timing, so proposals are reproducible only in a sequential run. A trial whose folder
is gone (set aside as damaged by `accelnas.search.tuner.run_search`) is forgotten on reload and
proposed again under its id, so it is run again and the trial budget stays whole.

Warm start. ``start`` value dicts (``search.start_from``: the zoo skeleton's nearest member) are
proposed first, each once, unscreened (the caller screens them); every controller then treats
them as its first completed trials (evolution's first population, policy gradient's first batch).

Screening. A ``screen(values) -> str | None`` callable (see `accelnas.search.screen.Screen`) rejects a
proposal before any training time is spent on it (an op the accelerator does not map, a latency
over the cap); the controller then proposes again (up to ``max_attempts``). Rejections are kept
in the oracle's state (``rejections``: trial, attempt, reason, values).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import Trial, TrialStatus

from accelnas.space.search_space import SearchSpace

CONTROLLERS = ("evolution", "policy_gradient", "random")


class ArchOracle(keras_tuner.Oracle):
    """Base of the controllers: proposals over a `SearchSpace`, screening, seeded draws.

    Args:
        space: the search space.
        max_trials: trials to run.
        seed: the search seed (0 is a valid seed).
        screen: optional ``values -> reason | None`` (a reason rejects the proposal).
        max_attempts: proposals tried per trial before the search stops with a clear message.
        start: value dicts proposed first, in order, each once (a warm start, e.g. the zoo
            skeleton's nearest member; they count as the controller's first trials).
        **kwargs: passed to ``keras_tuner.Oracle``.
    """

    controller = "base"

    def __init__(self, space: SearchSpace, *, max_trials: int, seed: int = 0,
                 screen: Callable[[Mapping[str, Any]], str | None] | None = None,
                 max_attempts: int = 200, start=(), **kwargs):
        kwargs.setdefault("max_consecutive_failed_trials", max_trials + 1)  # failures never stop it
        super().__init__(objective=keras_tuner.Objective("reward", "max"), max_trials=max_trials,
                         hyperparameters=space.to_hyperparameters(), allow_new_entries=False,
                         tune_new_entries=True, seed=int(seed) + 1, **kwargs)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.space = space
        self.search_seed = int(seed)
        self.screen = screen
        self.max_attempts = int(max_attempts)
        self.rejections: list[dict] = []
        self._choices = space.choices()
        self.start = [dict(v) for v in start]

    # ---- what a controller implements ---------------------------------------------------------

    def propose(self, rng: np.random.Generator) -> dict[str, Any]:
        """One value dict (every decision) for the next trial."""
        raise NotImplementedError

    # ---- keras-tuner hooks ----------------------------------------------------------------------

    def populate_space(self, trial_id):
        seen = self._seen_archs()
        for values in self.start:
            if self.space.from_values(values).encode() not in seen:
                return {"status": TrialStatus.RUNNING, "values": dict(values)}
        reasons: dict[str, int] = {}
        for attempt in range(self.max_attempts):
            rng = np.random.default_rng([self.search_seed, int(trial_id), attempt])
            values = self.propose(rng)
            key = self.space.from_values(values).encode()
            if key in seen:
                reasons["already tried"] = reasons.get("already tried", 0) + 1
                continue
            reason = self.screen(values) if self.screen is not None else None
            if reason:
                reasons[reason.split(":")[0]] = reasons.get(reason.split(":")[0], 0) + 1
                self.rejections.append({"trial_id": trial_id, "attempt": attempt, "reason": reason,
                                        "values": dict(values)})
                continue
            return {"status": TrialStatus.RUNNING, "values": values}
        summary = ", ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        raise RuntimeError(f"{self.controller}: no admissible architecture in {self.max_attempts} "
                           f"proposals for trial {trial_id} ({summary}); loosen search.latency_cap, "
                           f"raise search.target_latency_ms or widen the search space")

    def get_state(self):
        state = super().get_state()
        state["accelnas"] = {"controller": self.controller, "seed": self.search_seed,
                             "rejections": self.rejections}
        return state

    def set_state(self, state):
        # keras-tuner's reload reads the trial folders first: a trial the state names but no folder
        # holds (set aside as damaged) is forgotten here and proposed again under its id below
        lost = sorted({*state["end_order"], *state["ongoing_trials"].values(), *state["retry_queue"]}
                      - set(self.trials), key=int)
        if lost:
            state = dict(state, end_order=[t for t in state["end_order"] if t not in lost],
                         ongoing_trials={k: t for k, t in state["ongoing_trials"].items() if t not in lost},
                         retry_queue=[t for t in state["retry_queue"] if t not in lost],
                         run_times={t: n for t, n in state["run_times"].items() if t not in lost})
        super().set_state(state)
        mine = state.get("accelnas", {})
        if mine.get("controller", self.controller) != self.controller:
            raise ValueError(f"the project on disk was searched by {mine['controller']!r}, not "
                             f"{self.controller!r}; use another directory or overwrite it")
        self.rejections = list(mine.get("rejections", []))
        for tid in lost:
            self._propose_again(tid)

    def _propose_again(self, trial_id: str) -> None:
        """A new proposal for a forgotten trial id, queued to run before any new trial (keras-tuner's
        retry queue is served first, also when the trial budget is otherwise spent)."""
        hps = self.hyperparameters.copy()
        hps.values = self.populate_space(trial_id)["values"]
        trial = Trial(hps, trial_id=trial_id, status=TrialStatus.RUNNING)
        self.trials[trial_id] = trial
        self._record_values(trial)
        self._retry_queue.insert(0, trial_id)  # served from the end: lowest id first

    # ---- helpers --------------------------------------------------------------------------------

    def completed(self) -> list[tuple[dict, float]]:
        """``(values, reward)`` of the completed trials, in completion order."""
        out = []
        for tid in self.end_order:
            t = self.trials[tid]
            if t.status == TrialStatus.COMPLETED and t.score is not None and np.isfinite(t.score):
                out.append((dict(t.hyperparameters.values), float(t.score)))
        return out

    def _seen_archs(self) -> set[str]:
        return {self.space.from_values(t.hyperparameters.values).encode()
                for t in self.trials.values() if t.hyperparameters.values}

    def mutate(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``values`` with one decision (that has more than one choice) set to another value."""
        keys = [k for k, v in self._choices.items() if len(v) > 1]
        child = dict(values)
        if not keys:
            return child
        k = keys[int(rng.integers(len(keys)))]
        others = [v for v in self._choices[k] if v != values[k]]
        child[k] = others[int(rng.integers(len(others)))]
        return child


class RandomOracle(ArchOracle):
    """Uniform random search over the space (the baseline controller)."""

    controller = "random"

    def propose(self, rng):
        return self.space.sample_values(rng)


class EvolutionOracle(ArchOracle):
    """Regularized (aging) evolution.

    Args:
        population: size of the population (the newest completed trials).
        sample_size: tournament size (<= population).
    """

    controller = "evolution"

    def __init__(self, space: SearchSpace, *, population: int = 8, sample_size: int = 3, **kwargs):
        if population < 1 or not 1 <= sample_size <= population:
            raise ValueError(f"evolution needs population >= 1 and 1 <= sample_size <= population, "
                             f"got population={population}, sample_size={sample_size}")
        super().__init__(space, **kwargs)
        self.population = int(population)
        self.sample_size = int(sample_size)

    def propose(self, rng):
        done = self.completed()
        if len(done) < self.population:
            return self.space.sample_values(rng)
        members = done[-self.population:]
        picks = rng.choice(len(members), size=self.sample_size, replace=False)
        parent = max((members[i] for i in sorted(picks)), key=lambda m: m[1])[0]
        return self.mutate(parent, rng)


class PolicyGradientOracle(ArchOracle):
    """REINFORCE over independent categorical choices, with a moving-average baseline.

    Args:
        population: completed trials per policy update (the batch).
        learning_rate: step size on the logits.
        baseline_decay: decay of the moving-average reward baseline.
    """

    controller = "policy_gradient"

    def __init__(self, space: SearchSpace, *, population: int = 8, learning_rate: float = 1.0,
                 baseline_decay: float = 0.9, **kwargs):
        if population < 1 or learning_rate <= 0 or not 0 <= baseline_decay < 1:
            raise ValueError(f"policy_gradient needs population >= 1, learning_rate > 0 and "
                             f"0 <= baseline_decay < 1, got {population}, {learning_rate}, "
                             f"{baseline_decay}")
        super().__init__(space, **kwargs)
        self.population = int(population)
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)

    def policy(self) -> dict[str, np.ndarray]:
        """The logits per decision, replayed from the completed trials (the controller's state)."""
        logits = {k: np.zeros(len(v)) for k, v in self._choices.items()}
        index = {k: {v: i for i, v in enumerate(vals)} for k, vals in self._choices.items()}
        done = self.completed()
        baseline = None
        rewards_seen: list[float] = []
        for start in range(0, len(done) - self.population + 1, self.population):
            batch = done[start:start + self.population]
            rewards = np.array([r for _, r in batch])
            rewards_seen.extend(rewards)
            if baseline is None:
                baseline = float(rewards.mean())
            scale = float(np.std(rewards_seen)) or 1.0
            grads = {k: np.zeros_like(v) for k, v in logits.items()}
            for values, r in batch:
                adv = (r - baseline) / scale
                for k, lg in logits.items():
                    p = _softmax(lg)
                    onehot = np.zeros_like(p)
                    onehot[index[k][values[k]]] = 1.0
                    grads[k] += adv * (onehot - p)
            for k in logits:
                logits[k] += self.learning_rate * grads[k] / len(batch)
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * float(rewards.mean())
        return logits

    def probabilities(self) -> dict[str, dict[Any, float]]:
        """The current choice probabilities per decision (for notebooks)."""
        return {k: dict(zip(self._choices[k], _softmax(lg).tolist()))
                for k, lg in self.policy().items()}

    def propose(self, rng):
        logits = self.policy()
        return {k: self._choices[k][int(rng.choice(len(lg), p=_softmax(lg)))]
                for k, lg in logits.items()}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def make_oracle(controller: str, space: SearchSpace, *, max_trials: int, seed: int = 0,
                population: int = 8, sample_size: int = 3, learning_rate: float = 1.0,
                baseline_decay: float = 0.9, screen=None, **kwargs) -> ArchOracle:
    """The oracle of a ``search.controller`` name (``evolution``, ``policy_gradient``, ``random``)."""
    common = dict(max_trials=max_trials, seed=seed, screen=screen, **kwargs)
    if controller == "evolution":
        return EvolutionOracle(space, population=population, sample_size=sample_size, **common)
    if controller == "policy_gradient":
        return PolicyGradientOracle(space, population=population, learning_rate=learning_rate,
                                    baseline_decay=baseline_decay, **common)
    if controller == "random":
        return RandomOracle(space, **common)
    raise ValueError(f"unknown controller {controller!r}; choose from {', '.join(CONTROLLERS)}")
