"""Session reports (HTML, Markdown, JSON, CSV) and sample exports, read from the analysis."""
