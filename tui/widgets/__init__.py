"""The live screen's panes: coverage plot, problems table, sample streams, status bar."""
