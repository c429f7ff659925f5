"""Locally built models for offline tests and demos (no downloads): see `tiny_omni`."""
