"""Screening a candidate before any training: its latency per accelerator (the search's estimator),
whether every op maps on every accelerator, and the latency cap. The oracles screen their
proposals with it, the tuner checks again, scaling uses its latency functions."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from accelnas.latency import estimate, machine
from accelnas.latency.accelerator import Accelerator
from accelnas.latency.sim import supported
from accelnas.space.arch import ArchSpec
from accelnas.space.graph import from_arch
from accelnas.space.search_space import SearchSpace


@dataclass
class Screen:
    """Latency per accelerator, deployability and the latency cap of a candidate.

    Args:
        space: the search space (decodes value dicts).
        accelerators: the accelerators of params, by name.
        targets_ms: target latency per accelerator name, ms.
        method: latency estimator (``apm`` or ``sim``).
        latency_cap: reject candidates slower than ``latency_cap x T`` on an accelerator the
            reward uses (0: no cap).
        reward_uses: the accelerators the reward uses (`accelnas.search.reward.used_accelerators`).
    """

    space: SearchSpace
    accelerators: dict[str, Accelerator]
    targets_ms: dict[str, float]
    method: str = "apm"
    latency_cap: float = 0.0
    reward_uses: list[str] = field(default_factory=list)

    def latencies(self, arch: ArchSpec) -> dict[str, float]:
        """Estimated latency per accelerator, ms."""
        return {n: float(estimate(arch, acc, self.method).latency_ms) for n, acc in self.accelerators.items()}

    def latency_fn(self, name: str) -> Callable[[ArchSpec], float]:
        """``arch -> latency_ms`` on accelerator ``name`` (for `accelnas.scaling.compound`)."""
        if name not in self.accelerators:
            raise ValueError(f"unknown accelerator {name!r}; known: {', '.join(self.accelerators)}")
        acc = self.accelerators[name]
        return lambda arch: float(estimate(arch, acc, self.method).latency_ms)

    def deploy_problem(self, arch: ArchSpec) -> str | None:
        """Why ``arch`` cannot be deployed on one of the accelerators (first unmapped op), or None."""
        g = from_arch(arch)
        for name, acc in self.accelerators.items():
            m = machine(acc)
            for op in g.ops:
                ok, why = supported(op, m)
                if not ok:
                    return f"not deployable: {op.name} on {name}: {why}"
        return None

    def cap_problem(self, latencies: Mapping[str, float]) -> str | None:
        """Why the latencies break the cap, or None."""
        if not self.latency_cap:
            return None
        for name in self.reward_uses:
            cap = self.latency_cap * self.targets_ms[name]
            if latencies[name] > cap:
                return (f"over the latency cap: {latencies[name]:.2f} ms on {name} > "
                        f"{self.latency_cap:g} x {self.targets_ms[name]:g} ms")
        return None

    def __call__(self, values: Mapping[str, Any]) -> str | None:
        arch = self.space.from_values(values)
        return self.deploy_problem(arch) or self.cap_problem(self.latencies(arch))
