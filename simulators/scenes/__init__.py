"""Procedural street scenes seen from pole cameras and truck rear cameras.

Everything is deterministic from a seed; every drawn object comes with its exact box.
"""

from simulators.scenes.camera import Camera
from simulators.scenes.labels import LABEL_INDEX, LABELS
from simulators.scenes.plates import random_plate
from simulators.scenes.sample import Sample, letterbox, render_sample
from simulators.scenes.street import LIGHTINGS, Lighting, StreetLayout, render_street
from simulators.scenes.things import Drawn, Thing, draw_all, draw_thing

__all__ = [
    "LABELS",
    "LABEL_INDEX",
    "LIGHTINGS",
    "Camera",
    "Drawn",
    "Lighting",
    "Sample",
    "StreetLayout",
    "Thing",
    "draw_all",
    "draw_thing",
    "letterbox",
    "random_plate",
    "render_sample",
    "render_street",
]
