"""troop: a terminal workbench for repeated sampling from local models."""

__version__ = "0.1.0"
