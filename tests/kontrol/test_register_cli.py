"""``kite register`` and ``kite kontrol`` as a user runs them (issue 9.8): no clobbered kite.key,
no hang or traceback without a terminal, one secret variable on both sides, a loud open mode."""

from __future__ import annotations

import json
import stat
import subprocess

import anyio
import pytest
from cli_helpers import KITE, cli_env, kite_kontrol, run_cli

from kitecore.testing import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

SECRET = "register-cli-secret"


def claims(path) -> dict:
    from kitecore.discovery.claims import unverified_claims

    return unverified_claims(path.read_text())


def one_line(done: subprocess.CompletedProcess[bytes]) -> str:
    text = done.stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    return text


async def test_register_keeps_another_users_or_kontrols_kite_key_unless_forced(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    port = free_port()
    kontrol_url = f"http://127.0.0.1:{port}/kite"
    initial = await run_cli(home, "kontrol", "--initial", "--username", "admin",
                            "--data-dir", str(data), "--kontrol-url", kontrol_url)  # fmt: skip
    assert initial.returncode == 0, initial.stderr
    key_path = home / "kite.key"
    kontrols_key = key_path.read_text()
    async with kite_kontrol(home, port, "--data-dir", str(data), "--open-registration") as url:
        register = ("register", "--to", url, "--username")

        refused = await run_cli(home, *register, "alice")
        assert refused.returncode == 1
        line = one_line(refused)
        assert f"kite register: {key_path} belongs to Kontrol admin" in line
        assert "--force" in line
        assert key_path.read_text() == kontrols_key  # untouched

        forced = await run_cli(home, *register, "alice", "--force")
        assert forced.returncode == 0, forced.stderr
        backup = home / "kite.key.bak"
        assert backup.read_text() == kontrols_key
        assert stat.S_IMODE(backup.stat().st_mode) == 0o400
        assert claims(key_path)["sub"] == "alice"
        assert f"as {backup}" in forced.stdout.decode()

        again = await run_cli(home, *register, "alice")  # the same user, the same Kontrol
        assert again.returncode == 0, again.stderr
        assert claims(key_path)["sub"] == "alice"
        assert sorted(p.name for p in home.iterdir()) == ["kite.key", "kite.key.bak"]

        bob = await run_cli(home, *register, "bob")
        assert bob.returncode == 1
        assert "belongs to alice (issued by admin" in one_line(bob)
        assert claims(key_path)["sub"] == "alice"

        forced_again = await run_cli(home, *register, "bob", "--force")
        assert forced_again.returncode == 0, forced_again.stderr
        assert claims(home / "kite.key.bak.1")["sub"] == "alice"  # no backup is lost
        assert claims(backup)["sub"] == "admin"


async def test_register_of_the_same_user_at_another_kontrol_is_refused(tmp_path):
    home = tmp_path / "home"
    first, second = free_port(), free_port()
    async with kite_kontrol(tmp_path / "k1", first, "--data-dir", str(tmp_path / "d1"),
                            "--open-registration") as url:  # fmt: skip
        done = await run_cli(home, "register", "--to", url, "--username", "alice")
        assert done.returncode == 0, done.stderr
    key = (home / "kite.key").read_text()
    async with kite_kontrol(tmp_path / "k2", second, "--data-dir", str(tmp_path / "d2"),
                            "--open-registration") as url:  # fmt: skip
        done = await run_cli(home, "register", "--to", url, "--username", "alice")
        assert done.returncode == 1
        assert "another Kontrol" in one_line(done)
        assert (home / "kite.key").read_text() == key


async def test_register_without_terminal_or_secret_says_to_pass_secret(tmp_path):
    home = tmp_path / "home"
    async with kite_kontrol(tmp_path / "k", free_port(), "--data-dir", str(tmp_path / "d"),
                            "--registration-secret", SECRET) as url:  # fmt: skip
        done = await run_cli(home, "register", "--to", url, "--username", "alice")
        assert done.returncode == 1
        line = one_line(done)
        assert "no terminal" in line and "pass --secret" in line
        assert "KITE_REGISTRATION_SECRET" in line
        assert not (home / "kite.key").exists()

        # stdin closed altogether (sys.stdin is None): the same line, no traceback
        closed = await anyio.run_process(
            ["sh", "-c", 'exec "$@" <&-', "sh", *KITE, "register", "--to", url, "--username",
             "alice"],
            env=cli_env(home), check=False,
        )  # fmt: skip
        assert closed.returncode == 1
        assert "pass --secret" in one_line(closed)


@pytest.mark.parametrize(
    ("kontrol_var", "register_var"),
    [
        ("KITE_REGISTRATION_SECRET", "KITE_REGISTRATION_SECRET"),
        ("KONTROL_REGISTRATION_SECRET", "KITE_REGISTRATION_SECRET"),
        ("KITE_REGISTRATION_SECRET", "KONTROL_REGISTRATION_SECRET"),
    ],
)
async def test_one_secret_variable_on_both_sides_with_the_old_name_as_alias(
    tmp_path, kontrol_var, register_var
):
    home = tmp_path / "home"
    async with kite_kontrol(tmp_path / "k", free_port(), "--data-dir", str(tmp_path / "d"),
                            env={kontrol_var: SECRET}) as url:  # fmt: skip
        done = await run_cli(home, "register", "--to", url, "--username", "alice",
                             env={register_var: SECRET})  # fmt: skip
        assert done.returncode == 0, done.stderr
        shown = json.loads((await run_cli(home, "showkey")).stdout)
        assert shown["sub"] == "alice"


async def test_open_registration_logs_a_warning_at_start(tmp_path):
    log = tmp_path / "kontrol.log"
    async with kite_kontrol(tmp_path / "k", free_port(), "--data-dir", str(tmp_path / "d"),
                            "--open-registration", log=log):  # fmt: skip
        text = log.read_text()
    (line,) = [line for line in text.splitlines() if "open registration" in line]
    assert " WARNING " in line and "anyone may get a kite.key" in line


async def test_initial_keeps_a_users_kite_key_as_a_backup(tmp_path):
    home = tmp_path / "home"
    async with kite_kontrol(tmp_path / "k", free_port(), "--data-dir", str(tmp_path / "d"),
                            "--open-registration") as url:  # fmt: skip
        done = await run_cli(home, "register", "--to", url, "--username", "alice")
        assert done.returncode == 0, done.stderr
    alices = (home / "kite.key").read_text()
    initial = await run_cli(home, "kontrol", "--initial", "--username", "admin",
                            "--data-dir", str(tmp_path / "d2"))  # fmt: skip
    assert initial.returncode == 0, initial.stderr
    assert (home / "kite.key.bak").read_text() == alices
    assert f"as {home / 'kite.key.bak'}" in initial.stdout.decode()
    assert claims(home / "kite.key")["sub"] == "admin"
