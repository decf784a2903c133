"""The hub's use-cases over the database: users, cases, filing, commands, devices, metrics.

Each service takes its engine, clock and collaborators in its constructor; the MQTT and
file-store adapters reach them only through :mod:`central_hub.services.publisher` and
:class:`central_hub.adapters.evidence.EvidenceStore`.
"""
