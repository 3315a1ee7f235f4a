"""The HTTP face of the registry: Starlette handlers for `/v2/...`, thin by design."""
