"""Reliability suite: fuzzing every layer, fault injection and a bounded soak (see tests/RELIABILITY.md)."""
