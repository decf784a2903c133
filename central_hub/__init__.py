"""xiuhua central hub: ingest, cases, grid, devices, commands, API and console."""

__version__ = "0.1.0"
