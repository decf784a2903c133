"""The hub's pure domain: catalogue, working-time calendar, workflow, grid, filing, metrics.

Nothing here opens a socket or a database or reads a clock; the only I/O is loading the
packaged (or a given) data file. Services pass clocks and facts in and store what comes out.
"""
