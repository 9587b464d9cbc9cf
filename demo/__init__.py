"""Offline demo of the collector against the bundled exchange simulator."""
