"""The edge vision pipeline: sources, detector, tracker, zone and dwell rules, evidence.

``edge_agent.vision.config`` is pure (pydantic only). The other modules import OpenCV
and onnxruntime, so import them only where the pipeline runs.
"""
