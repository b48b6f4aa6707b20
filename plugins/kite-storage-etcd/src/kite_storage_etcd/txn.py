"""The registration transaction as etcd protobuf messages, built once and sent directly.

aetcd's ``Client.transaction`` takes its own operation objects and turns each into a protobuf
request every time it appears: the four puts of a registration, which appear in the outer and in
the nested transaction (:meth:`~kite_storage_etcd.storage.EtcdStorage.upsert`), were built twice,
and every answer was wrapped again. Registrations are Kontrol's hottest etcd call, so here the
``TxnRequest`` is built from protobuf messages once (a repeated field copies a message in C) and
sent with aetcd's own connection set-up and error mapping (``_ensure_connected``,
``_handle_errors``: the plugin pins ``aetcd<1.1``), so :class:`~.endpoints.Endpoints` sees the
same exceptions as for any other call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aetcd
import aetcd.client
from aetcd import rpc

__all__ = ["claim_request", "delete_op", "put_op", "send_txn", "unchanged_since"]

_EQUAL = rpc.Compare.EQUAL
_VALUE = rpc.Compare.VALUE
_CREATE = rpc.Compare.CREATE
_MOD = rpc.Compare.MOD


def put_op(key: bytes, value: bytes, lease: int, *, prev_kv: bool = False) -> Any:
    """A ``RequestOp`` putting ``value`` at ``key`` on ``lease``."""
    return rpc.RequestOp(
        request_put=rpc.PutRequest(key=key, value=value, lease=lease, prev_kv=prev_kv)
    )


def delete_op(key: bytes) -> Any:
    """A ``RequestOp`` deleting ``key``."""
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


def unchanged_since(key: bytes, revision: int) -> Any:
    """A ``Compare``: ``key`` was last modified at ``revision``."""
    return rpc.Compare(key=key, result=_EQUAL, target=_MOD, mod_revision=revision)


def claim_request(owner_key: bytes, username: bytes, puts: list[Any]) -> Any:
    """A nested ``RequestOp``: ``puts`` if ``owner_key`` holds ``username`` or does not exist,
    else read ``owner_key`` (to name the owner in the error)."""
    if_free = rpc.TxnRequest(
        compare=[rpc.Compare(key=owner_key, result=_EQUAL, target=_CREATE, create_revision=0)],
        success=puts,
        failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=owner_key))],
    )
    return rpc.RequestOp(
        request_txn=rpc.TxnRequest(
            compare=[rpc.Compare(key=owner_key, result=_EQUAL, target=_VALUE, value=username)],
            success=puts,
            failure=[rpc.RequestOp(request_txn=if_free)],
        )
    )


async def _raw_txn(client: aetcd.Client, request: Any) -> Any:
    return await client.kvstub.Txn(request, timeout=client._timeout, metadata=client.metadata)


#: ``_raw_txn`` with aetcd's connection set-up and error mapping (what its own calls have).
_txn: Callable[[aetcd.Client, Any], Awaitable[Any]] = aetcd.client._handle_errors(
    aetcd.client._ensure_connected(_raw_txn)
)


async def send_txn(client: aetcd.Client, operations: list[Any], compare: Sequence[Any] = ()) -> Any:
    """Run ``operations`` (``RequestOp`` messages) in one transaction, if every ``compare``
    holds (unconditionally without); the ``TxnResponse``."""
    return await _txn(client, rpc.TxnRequest(compare=compare, success=operations))
