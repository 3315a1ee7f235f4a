"""Benchmarks: ocireg side by side with the Go reference registry (`python -m bench`)."""
