"""The TUI's screens: setup, the live run and its steering keys, the sample browser, dialogs."""
