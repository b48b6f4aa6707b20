"""Kite's wire protocol, sans-IO: dnode messages, the request envelope, errors, identities.

Nothing here touches a socket or an event loop; every function takes and returns plain values,
so the connection layer (and the tests) can drive it directly.
"""

from .dnode import (
    FUNCTION_PLACEHOLDER,
    Message,
    decode,
    encode,
    encode_call,
    scrub,
    unscrub,
)
from .envelope import (
    Authentication,
    CallOptions,
    CallOptionsError,
    parse_call_options,
    parse_response,
    request_arguments,
    response_arguments,
)
from .errors import (
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
from .identity import KiteIdentity, Query
from .jsonlimits import MAX_JSON_DEPTH, JSONDepthError, check_json_depth
from .jsonlimits import loads as load_json
from .session import Session
from .version import Constraint, Version, is_constraint, version_matches

__all__ = [
    "FUNCTION_PLACEHOLDER",
    "MAX_JSON_DEPTH",
    "ArgumentError",
    "Authentication",
    "AuthenticationError",
    "CallOptions",
    "CallOptionsError",
    "CallbackLimitError",
    "Constraint",
    "DisconnectError",
    "GenericError",
    "InvalidResponseError",
    "JSONDepthError",
    "KiteError",
    "KiteIdentity",
    "KiteTimeoutError",
    "Message",
    "MethodNotFoundError",
    "ProtocolError",
    "Query",
    "RequestLimitError",
    "SendError",
    "Session",
    "ShuttingDownError",
    "Version",
    "check_json_depth",
    "decode",
    "encode",
    "encode_call",
    "is_constraint",
    "load_json",
    "parse_call_options",
    "parse_response",
    "request_arguments",
    "response_arguments",
    "scrub",
    "unscrub",
    "version_matches",
]
