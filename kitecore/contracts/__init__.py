"""Contract test suites that plugins run against themselves (see :mod:`.storage`).

Import them from a plugin's tests; they need pytest and anyio's pytest plugin.
"""
