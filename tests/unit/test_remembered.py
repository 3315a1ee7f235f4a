"""The cache of credentials verified lately (`auth.remembered`, htpasswd's and LDAP's)."""

from __future__ import annotations

import asyncio

from ocireg.auth.remembered import Remembered


async def _yes() -> str:
    return "ok"


async def _no() -> None:
    return None


def test_no_user_and_password_pair_reads_as_another() -> None:
    """User "a\\0b" with password "c" is not user "a" with password "b\\0c"."""

    async def run() -> object:
        remembered: Remembered[str] = Remembered()
        assert await remembered.check("a", "b\0c", _yes) == "ok"
        return await remembered.check("a\0b", "c", _no)

    assert asyncio.run(run()) is None


def test_a_check_begun_before_a_clear_is_not_remembered() -> None:
    """The htpasswd file changed while a check of the old password was running: that check
    answers its request, and the old password is not remembered after it."""

    async def run() -> tuple[object, object]:
        remembered: Remembered[str] = Remembered()
        gate = asyncio.Event()

        async def slow_yes() -> str:
            await gate.wait()
            return "ok"

        first = asyncio.ensure_future(remembered.check("dave", "old", slow_yes))
        await asyncio.sleep(0)  # let the check begin (one turn of the loop, not a delay)
        remembered.clear()
        gate.set()
        return await first, await remembered.check("dave", "old", _no)

    assert asyncio.run(run()) == ("ok", None)


def test_a_verified_credential_is_remembered_and_a_refusal_is_not() -> None:
    async def run() -> list[object]:
        remembered: Remembered[str] = Remembered()
        return [
            await remembered.check("u", "p", _no),
            await remembered.check("u", "p", _yes),
            await remembered.check("u", "p", _no),  # remembered: not asked again
        ]

    assert asyncio.run(run()) == [None, "ok", "ok"]
