"""The TUI's built-in theme files (TOML), installed as `troop.themes` package data."""
