"""The web pages (issue #16): `pages` (routes), `data` (reads), `session` (login)."""
