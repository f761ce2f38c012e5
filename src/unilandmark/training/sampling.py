"""Multi-domain batch schedule: each batch from one domain, domains interleaved by policy.

The schedule of an epoch is a pure function of (seed, epoch, world size), so a resumed
run replays it exactly and every DDP rank sees the same domain at the same step.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError

POLICIES = ("round-robin", "proportional")


def epoch_schedule(sizes: dict[str, int], batch_size: int, seed: int, epoch: int,
                   policy: str = "round-robin", world_size: int = 1,
                   rank: int = 0) -> list[tuple[str, np.ndarray]]:
    """Batches ``(domain, indices)`` for this rank in one epoch.

    Each domain's indices are shuffled and cut into global batches of
    ``batch_size * world_size``; this rank takes its slice. Batches whose per-rank slice
    would be smaller than 2 are dropped (BatchNorm needs two samples). ``round-robin``
    cycles through the domains; ``proportional`` shuffles all batches together, so each
    domain is drawn in proportion to its size.
    """
    if policy not in POLICIES:
        raise InputError(f"unknown mixing policy {policy!r}; expected one of {POLICIES}")
    rng = np.random.default_rng([seed, epoch])
    per_domain: dict[str, list[np.ndarray]] = {}
    step = batch_size * world_size
    for domain in sorted(sizes):
        order = rng.permutation(sizes[domain])
        batches = []
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            mine = chunk[rank * batch_size:(rank + 1) * batch_size]
            smallest = min(len(chunk[r * batch_size:(r + 1) * batch_size])
                           for r in range(world_size))
            if smallest >= min(2, batch_size):
                batches.append(mine)
        per_domain[domain] = batches
    if policy == "round-robin":
        out = []
        for i in range(max((len(b) for b in per_domain.values()), default=0)):
            for domain in sorted(per_domain):
                if i < len(per_domain[domain]):
                    out.append((domain, per_domain[domain][i]))
        return out
    flat = [(d, b) for d in sorted(per_domain) for b in per_domain[d]]
    return [flat[i] for i in rng.permutation(len(flat))]
