"""Shared test support: real brokers, real processes, bounded waits."""
