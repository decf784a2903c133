"""The one-command closed-loop demo (``xiuhua demo``, ``make demo``).

:mod:`~simulators.demo.plan` (pure) says what runs, :mod:`~simulators.demo.orchestrator`
sets it up and runs it, :mod:`~simulators.demo.processes` owns the child processes,
:mod:`~simulators.demo.status` draws the status table, :mod:`~simulators.demo.agent` and
:mod:`~simulators.demo.hub` are the entry points of the demo's agents and hub.
"""
