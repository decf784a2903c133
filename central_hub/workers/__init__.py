"""Long-lived hub tasks: ingest of device messages and the command dispatcher."""
