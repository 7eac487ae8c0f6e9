"""Broker tests: one contract for every backend, and Redis failure modes."""
