"""Reliability and security: injected faults, hostile input, load, a locked-down service."""
