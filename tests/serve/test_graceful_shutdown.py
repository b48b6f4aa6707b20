"""Graceful shutdown: in flight calls finish, new calls and connections are refused, the
kite leaves Kontrol; in process (``kite.shutdown``) and as a process (SIGTERM, SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import anyio
import pytest
from kite_kontrol.testing import KontrolProcess, machine_key, registered_ids
from serve_helpers import KITE_SCRIPT, http_get, wait_healthy

from kitecore import Config, Kite, KiteError, ShuttingDownError
from kitecore.plugins import load_plugins
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio


async def test_shutdown_lets_calls_finish_and_refuses_new_ones(
    make_kite, kite_config, kite_plugins
):
    started, release = anyio.Event(), anyio.Event()

    async def slow(r: Any) -> str:
        started.set()
        await release.wait()
        return "finished"

    kite = await make_kite("drain", methods={"slow": slow})
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    results: list[Any] = []
    async with (
        await anyio.connect_tcp("127.0.0.1", kite.port) as http,
        caller.new_client(kite.url) as client,
        anyio.create_task_group() as tg,
    ):

        async def call_slow() -> None:
            results.append(await client.tell("slow"))

        tg.start_soon(call_slow)
        await started.wait()
        tg.start_soon(kite.shutdown)
        while not kite.shutting_down:
            await anyio.lowlevel.checkpoint()

        # a new call on an open connection: a clear error
        with pytest.raises(ShuttingDownError, match="kite is shutting down") as refused:
            await client.tell("kite.ping")
        assert (refused.value.type, refused.value.code) == ("genericError", "shuttingDown")
        # a new connection: refused (the listener is closed)
        await _refuses_connections(kite.port)
        # health on a connection opened before: 503
        status, body = await http_get(http, "/kite/health")
        assert status == 503
        assert body["status"] == "shutting down"

        release.set()
        connection = client.connection
        await connection.wait_closed()  # closed by the kite once the call finished
        assert connection.stream.close_code == 1000  # with a close frame, not dropped
    assert results == ["finished"]


async def test_async_with_block_end_waits_for_calls(kite_config, kite_plugins):
    started = anyio.Event()

    async def slow(r: Any) -> str:
        started.set()
        await anyio.sleep(0.2)
        return "finished"

    server = Kite("drain", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    server.handle("slow", slow)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    results: list[Any] = []
    async with caller, anyio.create_task_group() as tg:  # the caller runs: it can dial
        async with server:
            client = caller.new_client(server.url)
            await client.dial()

            async def call_slow() -> None:
                results.append(await client.tell("slow"))

            tg.start_soon(call_slow)
            await started.wait()
        # the block ended: the call in flight got its answer before the connection closed
    assert results == ["finished"]


async def test_shutdown_timeout_bounds_the_wait(make_kite, kite_config, kite_plugins):
    started = anyio.Event()

    async def forever(r: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    config = kite_config.copy()
    config.shutdown_timeout = 0.1
    kite = await make_kite("stuck", methods={"forever": forever}, config=config)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(kite.url) as client, anyio.create_task_group() as tg:

        async def call() -> None:
            with pytest.raises(KiteError, match="disconnect"):
                await client.tell("forever")

        tg.start_soon(call)
        await started.wait()
        await kite.shutdown()  # returns after the timeout, the stuck call cut off
        await client.connection.wait_closed()


def test_shutdown_timeout_from_the_environment():
    assert Config.from_env({"KITE_SHUTDOWN_TIMEOUT": "2.5"}).shutdown_timeout == 2.5
    assert Config().shutdown_timeout == 10.0


# ---------------------------------------------------------------- as a process


async def _start_kite(tmp_path, mode: str, port: int, home: str) -> anyio.abc.Process:
    script = tmp_path / "slow_kite.py"
    script.write_text(KITE_SCRIPT)
    env = {
        **os.environ,
        "KITE_HOME": home,
        "KITE_PLUGINS": "websocket,token",
        "KITE_PLUGINS_STRICT": "1",
        "KITE_ANYIO_BACKEND": "asyncio",
    }
    return await anyio.open_process(
        [sys.executable, str(script), mode, str(port)], env=env, stdin=subprocess.DEVNULL
    )


async def _read_line(process: anyio.abc.Process, buffer: list[bytes]) -> str:
    """The next stdout line of ``process`` (``buffer`` keeps what came after it)."""
    assert process.stdout is not None
    data = buffer.pop() if buffer else b""
    with anyio.fail_after(30):
        while b"\n" not in data:
            data += await process.stdout.receive()
    line, _, rest = data.partition(b"\n")
    buffer.append(rest)
    return line.decode()


async def _refuses_connections(port: int) -> None:
    """Until a new TCP connection to ``port`` is refused: the listening socket is closed by
    the task that accepted on it, a moment after shutdown began (until then the system may
    still complete a handshake into the backlog). Fails if it stays open for 10 s."""
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                return
            await stream.aclose()
            await anyio.sleep(0.01)


async def _wait_refusing(client: Any) -> None:
    """Until the kite answers new calls with "kite is shutting down" (the signal arrived)."""
    with anyio.fail_after(30):
        while True:
            try:
                await client.tell("slow", 0)
            except KiteError as exc:
                assert "kite is shutting down" in str(exc)
                return


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sigterm_finishes_the_call_and_leaves_kontrol(tmp_path):
    kontrol = KontrolProcess(
        tmp_path, port=free_port(), registration_secret="s3cret", plugins="websocket,token,memory"
    )
    await kontrol.start()
    caller = Kite("caller", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
    try:
        key = await machine_key(caller, kontrol.url, "alice", "s3cret")
        home = tmp_path / "alice-home"
        home.mkdir()
        (home / "kite.key").write_text(key)
        port = free_port()
        process = await _start_kite(tmp_path, "register", port, str(home))
        async with process:
            out: list[bytes] = []
            _, kite_id, environment = (await _read_line(process, out)).split()
            assert kite_id in await registered_ids(caller, kontrol.url, key, environment)
            health = await wait_healthy(port)
            assert health["registered"] is True and health["id"] == kite_id

            url = f"http://127.0.0.1:{port}/kite"
            results: list[Any] = []
            async with caller.new_client(url) as client, anyio.create_task_group() as tg:

                async def call_slow() -> None:
                    results.append(await client.tell("slow", 2.0))

                tg.start_soon(call_slow)
                assert await _read_line(process, out) == "started"
                process.send_signal(signal.SIGTERM)
                await _wait_refusing(client)
                await _refuses_connections(port)  # no new connections
            assert results == ["done"]  # the call in flight got its result
            with anyio.fail_after(30):
                assert await process.wait() == 0
        with anyio.fail_after(30):  # Kontrol dropped it when its connection closed
            while True:
                if kite_id not in await registered_ids(caller, kontrol.url, key, environment):
                    break
                await anyio.sleep(0.05)
    finally:
        await kontrol.stop()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("first", "second"), [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)]
)
async def test_second_signal_forces_exit(tmp_path, first, second):
    port = free_port()
    process = await _start_kite(tmp_path, "run", port, str(tmp_path / "home"))
    async with process:
        await wait_healthy(port)
        caller = Kite("caller", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
        out: list[bytes] = []
        async with caller.new_client(f"http://127.0.0.1:{port}/kite") as client:
            async with anyio.create_task_group() as tg:

                async def call_forever() -> None:
                    with pytest.raises(KiteError):
                        await client.tell("slow", 3600.0, timeout=None)

                tg.start_soon(call_forever)
                assert await _read_line(process, out) == "started"
                process.send_signal(first)
                await _wait_refusing(client)  # draining: it would wait the 10 s default
                process.send_signal(second)
                with anyio.fail_after(5):
                    assert await process.wait() == 128 + second


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_kite_kontrol_stops_cleanly_on_a_signal(tmp_path, signum):
    kontrol = KontrolProcess(tmp_path, port=free_port(), plugins="websocket,token,memory")
    await kontrol.start()
    try:
        caller = Kite("caller", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
        async with caller.new_client(kontrol.url) as client:
            assert await client.tell("kite.ping") == "pong"
            assert kontrol.process is not None
            kontrol.process.send_signal(signum)
            await client.connection.wait_closed()  # closed by Kontrol, not dropped
            with anyio.fail_after(30):
                assert await kontrol.process.wait() == 0
    finally:
        await kontrol.stop()
