"""Synthetic scenes, cameras, trucks, fleets and brokers for tests and the demo."""
