"""The session file: its schema, its one writer's lock, and every query against it."""
