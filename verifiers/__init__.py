"""Verifiers that judge samples in sandboxed subprocesses."""
