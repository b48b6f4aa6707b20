"""Built-in transports (``websocket``); each module registers itself through the plugin hooks."""
