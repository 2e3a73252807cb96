"""Checks: each check declared once, and the one Polars plan that computes them all."""
