"""Peer servers measured in the same harness as livehub (see docs/benchmarks.md)."""
