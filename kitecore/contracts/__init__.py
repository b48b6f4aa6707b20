"""Contract test suites that plugins run against themselves (:mod:`.storage`, :mod:`.transport`).

Import them from a plugin's tests; they need pytest and anyio's pytest plugin.
"""
