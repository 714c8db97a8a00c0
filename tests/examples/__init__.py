"""Tests of the example production scenarios."""
