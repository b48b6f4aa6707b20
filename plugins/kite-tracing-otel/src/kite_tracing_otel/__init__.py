"""OpenTelemetry tracing for kite for Python (the ``tracing`` plugin)."""
