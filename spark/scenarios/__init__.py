"""Scenarios: try the RSI loop on a graph of your own with simulated node behaviour.

``model`` is the public file format, ``behaviour`` and ``nodes`` the simulated nodes, ``runner``
runs a scenario on the real workflow, ``report`` is its result (``spark bench run FILE``).
"""
