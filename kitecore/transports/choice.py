"""Which transports dial a URL, in which order, and which one worked there last time.

With ``KITE_TRANSPORT=auto`` every installed transport that accepts the URL is a candidate,
highest priority first (SockJS before raw WebSocket for ``http(s)://`` URLs when the SockJS
plugin is installed). A kite remembers, per URL, the transport that last opened a connection,
and tries it first next time: a kite reached over raw WebSocket once is dialed straight over
raw WebSocket again, without first paying for a SockJS attempt. A server that changed is
re-probed: its remembered transport fails with
:class:`~kitecore.transport.TransportMismatchError` and the other candidates are tried.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from kitecore.transport import Transport

__all__ = ["AUTO", "DialMemory", "candidates"]

#: The transport name that means "choose from the URL".
AUTO = "auto"


class DialMemory:
    """A bounded map URL -> name of the transport that opened the last connection there.

    The least recently used URL is forgotten first once ``size`` URLs are known.
    """

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.size = size
        self._names: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def get(self, url: str) -> str | None:
        """The transport that worked for ``url`` last, if any."""
        name = self._names.get(url)
        if name is not None:
            self._names.move_to_end(url)
        return name

    def remember(self, url: str, name: str) -> None:
        """Record that transport ``name`` opened a connection to ``url``."""
        names = self._names
        if names.get(url) != name:
            names[url] = name
        names.move_to_end(url)
        if len(names) > self.size:
            names.popitem(last=False)

    def forget(self, url: str) -> None:
        """Drop what is known about ``url``."""
        self._names.pop(url, None)


def candidates(
    transports: Mapping[str, Transport], url: str, wanted: str, memory: DialMemory | None = None
) -> list[Transport]:
    """The transports to try for ``url``, in order.

    ``wanted`` is a transport name (then that transport alone) or ``auto``: every transport
    that accepts ``url``, the one ``memory`` remembers for it first, then by priority.
    Raises :class:`ValueError` for an unknown name or a URL no transport accepts.
    """
    wanted = wanted.strip() or AUTO
    if wanted.lower() != AUTO:
        transport = transports.get(wanted) or transports.get(wanted.lower())
        if transport is None:
            installed = ", ".join(sorted(transports)) or "none"
            raise ValueError(f"unknown transport {wanted!r}; installed: {installed}")
        return [transport]
    found = [t for t in transports.values() if t.accepts(url)]
    if not found:
        installed = ", ".join(sorted(transports)) or "none"
        raise ValueError(f"no installed transport can dial {url!r} (installed: {installed})")
    found.sort(key=lambda t: t.priority, reverse=True)
    if len(found) > 1 and memory is not None:
        last = memory.get(url)
        for index, transport in enumerate(found):
            if transport.name == last:
                if index:
                    found.insert(0, found.pop(index))
                break
    return found
