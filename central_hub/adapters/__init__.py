"""Thin adapters at the hub's edge: the MQTT session (the only paho import) and the
evidence file store. The database lives in :mod:`central_hub.db`, HTTP in
:mod:`central_hub.api` and :mod:`central_hub.console`.
"""
