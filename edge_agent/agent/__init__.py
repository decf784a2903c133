"""What the agent does as a unit, beside its link to the hub: supervision and self-report.

Modules: :mod:`~edge_agent.agent.supervisor` (named stages, restarted with backoff),
:mod:`~edge_agent.agent.heartbeat` (the telemetry message), :mod:`~edge_agent.agent.health`
(board figures: free disk, CPU temperature), :mod:`~edge_agent.agent.selftest` (synthetic
events through the uplink) and :mod:`~edge_agent.agent.snapshot` (``snapshot.request``).
Import the submodules; this package stays light.
"""
