"""Small building blocks every app may use: errors, logging, request ids, metrics.

A leaf package: it imports no app of ours, so any app may import it without breaking
the dependency direction of the architecture.
"""
