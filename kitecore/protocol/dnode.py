"""The dnode message layer: one JSON object per message, functions passed as callbacks.

A message is ``{"method": ..., "arguments": [...], "callbacks": {"<id>": [path...]}}``
(protocol.md §1). ``method`` is a method name (str) or the id of a callback the receiver sent
earlier (int). Functions inside ``arguments`` travel as the placeholder ``"[Function]"`` and the
``callbacks`` map says where they sit: :func:`scrub` does that on the way out, :func:`unscrub`
puts callable proxies back on the way in.

Rules kept here:

* decode accepts what Go and kite.js send: ``links`` is ignored, ``method`` may be a JSON float
  with an integral value, missing or null ``arguments``/``callbacks`` are empty, path elements
  may be integers or strings (kite.js sends ``"0"``).
* encode always emits the three keys in Go's order, compact, non-ASCII left as is.
* Everything here is on the per-message hot path: the common cases (no callbacks) do no copying.
"""

from __future__ import annotations

import json
import json.encoder
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any

from .errors import ProtocolError, SendError

__all__ = [
    "FUNCTION_PLACEHOLDER",
    "MalformedMessage",
    "Message",
    "carriable",
    "decode",
    "decode_parts",
    "encode",
    "encode_call",
    "encode_reply",
    "encode_value",
    "scrub",
    "unscrub",
    "use_fast_json",
]

logger = logging.getLogger(__name__)

#: What a function looks like inside ``arguments`` on the wire.
FUNCTION_PLACEHOLDER = "[Function]"

#: A path from the top of ``arguments`` to a callback: list indexes and object keys.
Path = list[int | str]


@dataclass(frozen=True, slots=True)
class Message:
    """One dnode message.

    ``callbacks`` maps a callback id (decimal string) to its path inside ``arguments``.
    """

    method: str | int
    arguments: list[Any]
    callbacks: dict[str, Path]


# A frozen dataclass's generated __init__ calls object.__setattr__ once per field; decode builds
# a Message for every incoming message, so it fills the slots directly (about twice as fast).
_new_object = object.__new__
_set_method = Message.__dict__["method"].__set__
_set_arguments = Message.__dict__["arguments"].__set__
_set_callbacks = Message.__dict__["callbacks"].__set__


def _message(method: str | int, arguments: list[Any], callbacks: dict[str, Path]) -> Message:
    msg = _new_object(Message)
    _set_method(msg, method)
    _set_arguments(msg, arguments)
    _set_callbacks(msg, callbacks)
    return msg


class MalformedMessage(ProtocolError):
    """A message of the right shape holding a value this side refuses (an integer too long to
    convert, see :func:`sys.get_int_max_str_digits`).

    ``partial`` is the message with those values replaced by None, so that the receiver can
    still answer a request or fail the call a reply was meant for.
    """

    def __init__(self, message: str = "", *, partial: Message | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial = partial


# --------------------------------------------------------------------------------------------
# Encoding


def _not_serialisable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _make_dump() -> Callable[[Any], str]:
    """Compact, non-ASCII-preserving, NaN-refusing JSON encoding as fast as CPython allows."""
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    c_encode_string = getattr(json.encoder, "c_encode_basestring", None)
    if make_c_encoder is None or c_encode_string is None:  # e.g. PyPy
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_not_serialisable
        ).encode
    # Calling the C encoder directly is about twice as fast as json.dumps(..., separators=...),
    # which builds a new JSONEncoder per call. No cycle markers: a cycle ends in RecursionError,
    # which _encode turns into a SendError.
    c_encoder = make_c_encoder(
        None, _not_serialisable, c_encode_string, None, ":", ",", False, False, False
    )

    def dump(obj: Any) -> str:
        return "".join(c_encoder(obj, 0))

    return dump


_dump = _make_dump()
# Text that UTF-8 cannot carry (lone surrogates: a peer's "\ud800", a filename decoded with
# surrogateescape) goes out escaped, as JSON allows; only then is this slower encoder used.
_dump_ascii = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_not_serialisable
).encode


def _encode(obj: dict[str, Any]) -> str:
    try:
        text = _dump(obj)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = _dump_ascii(obj)
        return text
    except (TypeError, ValueError) as exc:
        raise SendError(f"arguments are not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise SendError("arguments are nested too deeply or contain a cycle") from exc


def encode_call(method: str | int, arguments: list[Any], callbacks: dict[str, Path]) -> str:
    """Encode a message from its parts (the hot path: no :class:`Message` is built).

    Raises :class:`SendError` when ``arguments`` cannot be represented as JSON (unknown
    types, NaN or infinity, cycles).
    """
    return _encode({"method": method, "arguments": arguments, "callbacks": callbacks})


def encode(msg: Message) -> str:
    """Encode ``msg`` as compact JSON with keys ``method``, ``arguments``, ``callbacks``."""
    return _encode({"method": msg.method, "arguments": msg.arguments, "callbacks": msg.callbacks})


def encode_value(value: Any) -> str:
    """``value`` as compact JSON, written as :func:`encode_call` writes it inside a message:
    for building a message from parts encoded once (a caller's identity). The text may hold
    characters UTF-8 cannot carry; :func:`carriable` says whether the whole message does.

    Raises :class:`SendError` as :func:`encode_call` does.
    """
    try:
        return _dump(value)
    except (TypeError, ValueError) as exc:
        raise SendError(f"arguments are not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise SendError("arguments are nested too deeply or contain a cycle") from exc


def carriable(text: str) -> bool:
    """Whether UTF-8 can carry ``text`` (no lone surrogates); else encode the message with
    :func:`encode_call`, which escapes them."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_REPLY_MIDDLE = ',"arguments":[{"error":null,"result":'
_REPLY_END = '}],"callbacks":{}}'


def encode_reply(callback_id: int, result: Any) -> str:
    """The reply message calling ``callback_id`` with ``{"error": null, "result": result}``:
    what ``encode_call(callback_id, [{"error": None, "result": result}], {})`` returns, without
    building the message first. ``result`` must hold no function (scrub it first).
    """
    try:
        value = _dump(result)  # (encode_value, inlined: a reply per call served)
    except (TypeError, ValueError, RecursionError):
        value = encode_value(result)  # raises the SendError saying why
    text = "".join(('{"method":', str(int(callback_id)), _REPLY_MIDDLE, value, _REPLY_END))
    if text.isascii() or carriable(text):
        return text
    return encode_call(callback_id, [{"error": None, "result": result}], {})


# --------------------------------------------------------------------------------------------
# Decoding

_raw_decode = json.JSONDecoder().raw_decode
_JSON_WHITESPACE = " \t\n\r"

# The ``kitecore[speed]`` extra: msgspec parses a message about twice as fast as the standard
# library, to the same values (integers of any size up to the same digit limit, nesting up to
# the same recursion limit). It is only a shortcut: whatever it refuses (NaN and Infinity,
# lone surrogates, broken JSON...) is parsed again by the standard library, so what a message
# decodes to, and every error a peer sees, is the same with or without it.
_msgspec_loads: Callable[[str], Any] | None
try:
    from msgspec.json import Decoder as _MsgspecDecoder
except ImportError:  # pragma: no cover - the core-only environment has no msgspec
    _msgspec_loads = None
else:
    _msgspec_loads = _MsgspecDecoder().decode

#: The parser tried first, or None: the standard library alone (see :func:`use_fast_json`).
_fast_loads: Callable[[str], Any] | None = _msgspec_loads


def use_fast_json(enabled: bool = True) -> bool:
    """Parse messages with msgspec first when ``enabled`` and it is installed (the default);
    with ``enabled=False``, with the standard library only. Returns whether msgspec is used
    now. Results and errors are the same either way (for tests and benchmarks)."""
    global _fast_loads
    _fast_loads = _msgspec_loads if enabled else None
    return _fast_loads is not None


class _OversizedInteger(Exception):
    """An integer literal too long for int() (only raised while re-parsing a refused message)."""


def _parse_json_std(text: str) -> Any:
    """Parse ``text`` with the standard library's parser (what msgspec did not parse, or all
    without it); raises :class:`ProtocolError` saying what is wrong."""
    try:
        try:
            obj, end = _raw_decode(text)
        except JSONDecodeError:
            # Slow path: leading whitespace (which raw_decode refuses) or a real error.
            return json.loads(text)
    except JSONDecodeError as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("message is not valid JSON: nested too deeply") from None
    except ValueError:
        # valid JSON, but an integer longer than int() converts (4,300 digits by default)
        raise _OversizedInteger from None
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        raise ProtocolError(f"message is not valid JSON: extra data at char {end}")
    return obj


def _int_or_none(digits: str) -> int | None:
    try:
        return int(digits)
    except ValueError:
        return None


_lenient_loads = json.JSONDecoder(parse_int=_int_or_none).decode


def decode(data: str | bytes) -> Message:
    """Parse one dnode message.

    Raises :class:`ProtocolError` saying what is wrong when ``data`` is not valid UTF-8, not
    JSON, not an object, or when ``method``, ``arguments`` or ``callbacks`` have the wrong shape;
    :class:`MalformedMessage` (a ProtocolError) when a well-shaped message holds an integer too
    long to convert.
    """
    return _message(*decode_parts(data))


def decode_parts(data: str | bytes) -> tuple[str | int, list[Any], dict[str, Path]]:
    """:func:`decode`, returning ``(method, arguments, callbacks)`` instead of a
    :class:`Message` (for a session, which takes the message apart at once: one object less
    per message). Raises as :func:`decode` does."""
    if not isinstance(data, str):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"message is not valid UTF-8: {exc}") from None
        except TypeError:
            raise ProtocolError(f"message is not text: {type(data).__name__}") from None
    oversized = False
    try:
        fast = _fast_loads
        if fast is None:
            obj = _parse_json_std(data)
        else:
            try:
                obj = fast(data)
            except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError: the
                obj = _parse_json_std(data)  # standard library says what is wrong (or parses
                # what msgspec refuses)
    except _OversizedInteger:
        # Rare: parse again with the long integers as None, to say which message it was.
        try:
            obj = _lenient_loads(data)
        except (ValueError, RecursionError) as exc:  # e.g. extra data after the long integer
            raise ProtocolError(f"message is not valid JSON: {exc}") from None
        oversized = True
    if type(obj) is not dict:
        raise ProtocolError(f"message is not a JSON object: {_describe(obj)}")

    method: Any = obj.get("method")
    method_type = type(method)
    if method_type is not str and method_type is not int:
        if method_type is float and method.is_integer():
            method = int(method)
        else:
            raise ProtocolError(f"method is not a string or an integer: {_describe(method)}")

    arguments = obj.get("arguments")
    if arguments is None:
        arguments = []
    elif type(arguments) is not list:
        raise ProtocolError(f"arguments is not an array: {_describe(arguments)}")

    callbacks = obj.get("callbacks")
    if callbacks is None:
        callbacks = {}
    elif type(callbacks) is not dict:
        raise ProtocolError(f"callbacks is not an object: {_describe(callbacks)}")
    elif callbacks:
        if len(callbacks) == 1:  # a request's response callback alone, mostly: checked inline
            for cid, path in callbacks.items():
                if not (
                    type(path) is list
                    and len(path) == 2
                    and type(path[0]) is int
                    and type(path[1]) is str
                    and cid.isascii()
                    and cid.isdigit()
                ):
                    _check_callbacks(callbacks)
        else:
            _check_callbacks(callbacks)

    if oversized:
        limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
        raise MalformedMessage(
            f"an integer has more than {limit} digits",
            partial=_message(method, arguments, callbacks),
        )
    return method, arguments, callbacks


def _check_callbacks(callbacks: dict[str, Any]) -> None:
    for cid, path in callbacks.items():
        if not (cid.isascii() and cid.isdigit()):
            raise ProtocolError(f"callback id {cid!r} is not a non-negative decimal integer")
        if type(path) is not list:
            raise ProtocolError(f"callback path for id {cid} is invalid: {_describe(path)}")
        for element in path:
            element_type = type(element)
            if element_type is not int and element_type is not str:
                raise ProtocolError(
                    f"callback path for id {cid} is invalid: element {_describe(element)} "
                    "is not an integer or a string"
                )


def _describe(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # e.g. an integer too long to write out
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------
# Callbacks

#: Types that never hold a function: scrubbing skips them.
SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_SCALAR_TYPES = SCALAR_TYPES


def scrub(
    arguments: list[Any], register: Callable[[Callable[..., Any]], int]
) -> tuple[list[Any], dict[str, Path]]:
    """Replace every function inside ``arguments`` with ``"[Function]"``.

    Lists, tuples (which become lists when they hold a function) and dicts are walked
    recursively; every callable that is not a class is passed to ``register``, which returns
    its callback id, and its path is recorded under ``str(id)``. The caller's structure is
    never mutated: containers on the way to a function are copied, the rest is shared. When
    there is no function at all, ``arguments`` itself is returned.

    Raises :class:`SendError` when the structure contains a cycle.
    """
    callbacks: dict[str, Path] = {}
    try:
        scrubbed = _scrub_sequence(arguments, [], register, callbacks)
    except RecursionError as exc:
        raise SendError("arguments are nested too deeply or contain a cycle") from exc
    return scrubbed, callbacks


def _scrub_value(
    value: Any,
    path: list[int | str],
    register: Callable[[Callable[..., Any]], int],
    callbacks: dict[str, Path],
) -> Any:
    """Return ``value`` scrubbed: the same object when there is nothing to replace."""
    if isinstance(value, dict):
        return _scrub_mapping(value, path, register, callbacks)
    if isinstance(value, (list, tuple)):
        return _scrub_sequence(value, path, register, callbacks)
    if callable(value) and not isinstance(value, type):
        callbacks[str(register(value))] = path.copy()
        return FUNCTION_PLACEHOLDER
    return value


def _scrub_sequence(
    seq: list[Any] | tuple[Any, ...],
    path: list[int | str],
    register: Callable[[Callable[..., Any]], int],
    callbacks: dict[str, Path],
) -> Any:
    copy: list[Any] | None = None
    for index, value in enumerate(seq):
        if type(value) in _SCALAR_TYPES:
            continue
        path.append(index)
        new = _scrub_value(value, path, register, callbacks)
        path.pop()
        if new is not value:
            if copy is None:
                copy = list(seq)
            copy[index] = new
    return seq if copy is None else copy


def _scrub_mapping(
    mapping: dict[Any, Any],
    path: list[int | str],
    register: Callable[[Callable[..., Any]], int],
    callbacks: dict[str, Path],
) -> Any:
    copy: dict[Any, Any] | None = None
    for key, value in mapping.items():
        if type(value) in _SCALAR_TYPES:
            continue
        path.append(key if type(key) is str else _json_key(key))
        new = _scrub_value(value, path, register, callbacks)
        path.pop()
        if new is not value:
            if copy is None:
                copy = dict(mapping)
            copy[key] = new
    return mapping if copy is None else copy


def _json_key(key: Any) -> str:
    # The key as json.dumps will write it, so the path matches what the peer sees.
    if key is True or key is False or key is None:
        return json.dumps(key)
    return str(key)


#: Where a request's response callback sits (the path of most callbacks that arrive).
_RESPONSE_CALLBACK_PATH = [0, "responseCallback"]


def unscrub(
    arguments: list[Any], callbacks: dict[str, Path], make_proxy: Callable[[int], Any]
) -> list[Any]:
    """Put ``make_proxy(id)`` at each callback's path inside ``arguments`` (in place).

    String path elements index lists when the container is a list (kite.js sends ``"0"``).
    Paths that are empty or lead nowhere are skipped (logged at DEBUG), and no proxy is made
    for them. Returns ``arguments``.
    """
    if not callbacks:
        return arguments
    if len(callbacks) == 1:  # the common request: its response callback alone
        for cid, path in callbacks.items():
            if path == _RESPONSE_CALLBACK_PATH and type(path[0]) is int:
                options = arguments[0] if arguments else None
                if type(options) is dict and "responseCallback" in options:
                    try:
                        callback_id = int(cid)
                    except ValueError:
                        break  # skipped below, as any callback with such an id
                    options["responseCallback"] = make_proxy(callback_id)
                    return arguments
    for cid, path in callbacks.items():
        if not path:
            logger.debug("skipping callback %s: empty path", cid)
            continue
        container: Any = arguments
        slot = None
        for element in path:
            if slot is not None:
                container = container[slot]
            slot = _slot(container, element)
            if slot is None:
                break
        if slot is None:
            logger.debug("skipping callback %s: path %r does not exist", cid, path)
            continue
        try:
            callback_id = int(cid)
        except ValueError:
            logger.debug("skipping callback %r: id is not an integer", cid)
            continue
        container[slot] = make_proxy(callback_id)
    return arguments


def _slot(container: Any, element: Any) -> int | str | None:
    """The existing list index or dict key that ``element`` names in ``container``, or None."""
    if type(container) is list:
        if type(element) is int:
            index = element
        elif type(element) is str and element.isascii() and element.isdigit():
            if len(element) > 18:  # no list is that long, and int() refuses 4,300 digits
                return None
            index = int(element)
        else:
            return None
        return index if 0 <= index < len(container) else None
    if type(container) is dict:
        key = element if type(element) is str else _json_key(element)
        return key if key in container else None
    return None
