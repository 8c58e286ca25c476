"""Allow `python -m troop`."""

from troop.cli import entry

entry()
