"""Built-in transports (``websocket``, ``loopback``); each module registers itself through the
plugin hooks (entry points in group ``kite``, like any plugin)."""
