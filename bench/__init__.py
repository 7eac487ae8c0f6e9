"""livehub's load generator, scenarios and peer servers (see docs/benchmarks.md)."""
