"""The edge agent's way to the hub: durable outbox, MQTT link, uplink and signed commands.

Modules: :mod:`~edge_agent.link.outbox` (SQLite store), :mod:`~edge_agent.link.mqtt`
(the only paho importer), :mod:`~edge_agent.link.uplink` (outbox → broker),
:mod:`~edge_agent.link.commands` (verify, run, ack). Supervision, telemetry, selftest and
snapshots live in :mod:`edge_agent.agent`. Import the submodules; this package stays light.
"""
