"""Synthetic balance-sync exports with known faults, for accuracy tests and the benchmark."""

from .archive import CLEAN, DEFAULT_RATES, SynthOptions, SynthReport, synthesize, truth_path_for
from .ledger import Rates

__all__ = ["CLEAN", "DEFAULT_RATES", "Rates", "SynthOptions", "SynthReport", "synthesize", "truth_path_for"]
