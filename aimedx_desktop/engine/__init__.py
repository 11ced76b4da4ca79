"""The engine: scans, readers, writers, networks, inference and training. No Qt below here."""
