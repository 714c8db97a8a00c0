"""Synthetic research requests: many subjects, aspects and years, so topics rarely repeat."""

from __future__ import annotations

import random
from typing import Any

_SUBJECTS = (
    "solid-state batteries", "protein folding", "carbon capture", "quantum error correction",
    "urban heat islands", "microplastics", "CRISPR off-target effects", "large language models",
    "coral bleaching", "perovskite solar cells", "antibiotic resistance", "grid-scale storage",
    "sleep and memory", "ocean acidification", "autonomous shipping", "vertical farming",
    "graph neural networks", "long COVID", "hydrogen aviation", "soil microbiomes",
)  # fmt: skip
_ASPECTS = (
    "recent results", "open problems", "cost trends", "safety concerns", "benchmarks",
    "regulation", "market adoption", "key labs", "replication studies", "policy impact",
)  # fmt: skip


def make_request(rng: random.Random) -> dict[str, Any]:
    """One request: a topic and the analyst asking for the brief (the routing key)."""
    topic = f"{rng.choice(_SUBJECTS)}: {rng.choice(_ASPECTS)} since {rng.randint(2015, 2025)}"
    return {"topic": topic, "requester": f"analyst-{rng.randint(1, 400)}"}
