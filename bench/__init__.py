"""Benchmarks and the fault suite: figures, not assertions (`make bench`, `make faults`)."""
