"""Test scaffolding: tiny offline checkpoints and smoke-training data."""
