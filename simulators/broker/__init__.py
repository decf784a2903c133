"""The embedded MQTT 3.1.1 broker: the demo's fallback when Mosquitto is not installed.

``python -m simulators.broker --port N [--password-file F] [--acl-file F]`` runs it;
:class:`simulators.broker.process.EmbeddedBrokerProcess` runs it as a child process with
the same start/stop/restart interface as :class:`simulators.mosquitto.MosquittoBroker`.
"""
