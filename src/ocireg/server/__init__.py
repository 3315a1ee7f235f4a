"""App assembly, middlewares and process lifecycle."""
