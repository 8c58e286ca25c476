"""The Textual user interface for live sampling sessions."""
