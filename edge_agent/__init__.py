"""xiuhua edge agent: runs beside cameras and on trucks.

Importing this package stays cheap (no OpenCV, no onnxruntime); heavy stages are
imported by the modules that need them.
"""

__version__ = "0.1.0"
