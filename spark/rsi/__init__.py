"""RSI logic as plain functions and models: analysis, hypotheses, validation, testing, learning.

Nothing here imports Temporal; activities call into this package.
"""
