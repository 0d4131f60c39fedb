"""Grouping: classified files become acquisitions (single images and image sets)."""
