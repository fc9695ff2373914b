"""Evaluation: official metrics, ExpRate@CDM, error analysis."""
