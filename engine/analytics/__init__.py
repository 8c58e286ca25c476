"""What a session's samples and verdicts say: coverage, fits, forecasts, cost and selection."""
