"""kite-metrics-prometheus: real calls, then GET /metrics over HTTP, parsed and checked."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from kite_metrics_prometheus import KiteMetrics
from kite_metrics_prometheus import plugin as metrics_plugin
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kitecore import Kite
from kitecore.http import HTTPClient
from kitecore.plugins import load_plugins
from kitecore.protocol.errors import ArgumentError, GenericError
from kitecore.testing import CORE_PLUGINS, square

pytestmark = pytest.mark.anyio


async def fail(r: Any) -> None:
    raise RuntimeError("boom")


async def scrape(kite: Kite, path: str = "/metrics") -> dict[tuple[str, tuple[Any, ...]], float]:
    """GET ``path`` on ``kite``'s server; samples by (name, sorted labels)."""
    url = kite.url.removesuffix("/kite") + path
    async with HTTPClient() as http:
        result = await http.request("GET", url)
    assert result.status == 200, result.body
    assert result.headers.get("content-type", "").startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(result.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_calls_connections_and_traffic_are_counted(
    make_kite: Any, kite_config: Any, kite_plugins: Any
) -> None:
    metrics = KiteMetrics(CollectorRegistry())
    server = await make_kite("server", methods={"square": square, "fail": fail})
    metrics.install(server)
    metrics.serve(server)
    gone = anyio.Event()
    server.on_disconnect(lambda client: gone.set())
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    metrics.install(caller)
    async with caller.new_client(server.url) as client:
        for n in (1, 2, 3):
            assert await client.tell("square", n) == n * n
        with pytest.raises(GenericError):
            await client.tell("fail")
        with pytest.raises(ArgumentError):
            await client.tell("square", "x")
        live = await scrape(server)
    await gone.wait()
    after = await scrape(server)

    calls = "kite_server_calls_total"
    assert value(live, calls, kite="server", method="square", outcome="ok", error_type="") == 3
    assert (
        value(live, calls, kite="server", method="fail", outcome="error", error_type="genericError")
        == 1
    )
    assert (
        value(
            live, calls, kite="server", method="square", outcome="error", error_type="argumentError"
        )
        == 1
    )
    assert (
        value(live, "kite_server_call_duration_seconds_count", kite="server", method="square") == 4
    )
    assert value(live, "kite_server_call_duration_seconds_sum", kite="server", method="square") > 0
    assert value(live, "kite_server_calls_in_flight", kite="server") == 0
    client_calls = "kite_client_calls_total"
    assert (
        value(
            live,
            client_calls,
            kite="caller",
            target="",
            method="square",
            outcome="ok",
            error_type="",
        )
        == 3
    )
    assert (
        value(
            live,
            client_calls,
            kite="caller",
            target="",
            method="fail",
            outcome="error",
            error_type="genericError",
        )
        == 1
    )
    assert value(live, "kite_connections_open", kite="server", transport="websocket") == 1
    assert value(live, "kite_connections_open", kite="caller", transport="websocket") == 1
    # five requests in and five answers out on the server's one connection
    assert value(live, "kite_messages_total", kite="server", direction="in") == 5
    assert value(live, "kite_messages_total", kite="server", direction="out") == 5
    assert value(live, "kite_messages_total", kite="caller", direction="out") == 5
    assert value(live, "kite_message_bytes_total", kite="server", direction="in") > 5 * 100
    # after the caller left: no connection open, the traffic totals kept
    assert value(after, "kite_connections_open", kite="server", transport="websocket") == 0
    assert value(after, "kite_messages_total", kite="server", direction="in") == 5
    assert value(after, "kite_message_bytes_total", kite="server", direction="in") == value(
        live, "kite_message_bytes_total", kite="server", direction="in"
    )


async def test_calls_in_flight_while_a_handler_runs(make_kite: Any) -> None:
    metrics = KiteMetrics(CollectorRegistry())
    entered, release = anyio.Event(), anyio.Event()

    async def hold(r: Any) -> str:
        entered.set()
        await release.wait()
        return "done"

    server = await make_kite("server", methods={"hold": hold})
    metrics.install(server)
    metrics.serve(server, "/custom-metrics")
    caller = await make_kite("caller")
    async with caller.new_client(server.url) as client, anyio.create_task_group() as group:
        group.start_soon(client.tell, "hold")
        await entered.wait()
        during = await scrape(server, "/custom-metrics")
        release.set()
    assert value(during, "kite_server_calls_in_flight", kite="server") == 1


async def test_metrics_are_off_unless_asked_for(
    make_kite: Any, monkeypatch: pytest.MonkeyPatch, kite_config: Any
) -> None:
    plugins = load_plugins(names=CORE_PLUGINS, extra_plugins=[metrics_plugin])
    monkeypatch.delenv(metrics_plugin.ENV, raising=False)
    off = Kite("off", "1.0.0", config=kite_config.copy(), plugins=plugins)
    assert not off._server_observers and not off._client_observers

    monkeypatch.setenv(metrics_plugin.ENV, "1")
    name = f"on-{uuid.uuid4().hex[:8]}"  # the global registry outlives the test
    on = Kite(name, "1.0.0", config=kite_config.copy(), plugins=plugins)
    on.handle("square", square)
    caller = await make_kite("caller")
    async with on:
        async with caller.new_client(on.url) as client:
            assert await client.tell("square", 4) == 16
        samples = await scrape(on)
    assert (
        value(
            samples,
            "kite_server_calls_total",
            kite=name,
            method="square",
            outcome="ok",
            error_type="",
        )
        == 1
    )
    # the global registry also carries the process collectors of prometheus_client
    assert any(name.startswith("process_") or name.startswith("python_") for name, _ in samples)

    config = kite_config.copy()
    config.extra["metrics"] = "nonsense"
    with pytest.raises(ValueError, match="KITE_METRICS"):
        Kite("bad", "1.0.0", config=config, plugins=plugins)
