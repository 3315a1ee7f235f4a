"""Maintenance of stored content: garbage collection and scrub. Independent of HTTP."""
