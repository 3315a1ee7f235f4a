"""Authentication (htpasswd, bearer tokens) and access control (zot's policies)."""
