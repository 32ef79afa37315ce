"""Evaluation beyond a task's own validation: linear probes and baselines."""
