"""Synthetic support tickets: a few templates, so some requests repeat."""

from __future__ import annotations

import random
from typing import Any

_TEMPLATES = (
    "I was charged twice on my invoice {n}",
    "Cannot sign in, password reset does not work",
    "My parcel {n} is late, where is the delivery?",
    "I want my money back for order {n}",
    "The app shows an error and crashes on start",
    "URGENT: refund not received for order {n}",
    "Question about my account settings",
)


def make_ticket(rng: random.Random) -> dict[str, Any]:
    """One request: a ticket text and a customer id (the routing key)."""
    template = rng.choice(_TEMPLATES)
    return {
        "ticket": template.format(n=rng.randint(1000, 9999)),
        "customer_id": f"cust-{rng.randint(1, 5000)}",
    }
