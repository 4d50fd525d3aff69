"""Measuring a model (no torch): metrics, threshold choice, evaluate() on labelled images, the report."""
