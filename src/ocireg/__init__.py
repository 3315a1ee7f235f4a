"""ocireg: an OCI Distribution registry that scales out as a cluster."""

__version__ = "0.1.0"
