"""kite for Python: kites that serve methods and call each other over Kite's protocol.

>>> from kitecore import Kite
>>> k = Kite("first", "1.0.0")
"""

from kitecore.client import DEFAULT_TIMEOUT, Client, DialError
from kitecore.config import Config
from kitecore.hookspecs import hookimpl
from kitecore.interceptors import ClientCall, ServerCall
from kitecore.kite import Kite
from kitecore.methods import Method, MethodHandling
from kitecore.pickers import Candidate, Picker, PickerBase
from kitecore.pool import AllKitesFailedError, Pool
from kitecore.protocol.envelope import Authentication
from kitecore.protocol.errors import (
    ArgumentError,
    AuthenticationError,
    CallbackLimitError,
    DisconnectError,
    GenericError,
    InvalidResponseError,
    KiteError,
    KiteTimeoutError,
    MethodNotFoundError,
    ProtocolError,
    RequestLimitError,
    SendError,
    ShuttingDownError,
)
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.request import Arguments, Request

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "AllKitesFailedError",
    "ArgumentError",
    "Arguments",
    "Authentication",
    "AuthenticationError",
    "CallbackLimitError",
    "Candidate",
    "Client",
    "ClientCall",
    "Config",
    "DialError",
    "DisconnectError",
    "GenericError",
    "InvalidResponseError",
    "Kite",
    "KiteError",
    "KiteIdentity",
    "KiteTimeoutError",
    "Method",
    "MethodHandling",
    "MethodNotFoundError",
    "Picker",
    "PickerBase",
    "Pool",
    "ProtocolError",
    "Query",
    "Request",
    "RequestLimitError",
    "SendError",
    "ServerCall",
    "ShuttingDownError",
    "hookimpl",
]
