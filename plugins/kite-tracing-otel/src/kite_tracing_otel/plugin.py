"""The ``tracing`` kite plugin."""
