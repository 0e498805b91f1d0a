"""edgefn: a serverless function runtime and MQTT message router for edge machines."""

__version__ = "0.1.0"
