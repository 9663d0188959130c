"""Login throttling slows guessing per pair, per address and per account, and never lets an
attacker at one address make the right password fail from another address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from ipaddress import ip_network

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import PASSWORD, make_site, make_user
from visio import models as m
from visio.api.addresses import client_address
from visio.app import create_app
from visio.db import Database
from visio.errors import NotAuthenticated, TooManyAttempts
from visio.security import dummy_hash, password_hasher
from visio.services import accounts
from visio.settings import Settings

HASHER = password_hasher()
DUMMY = dummy_hash(HASHER)
WINDOW = timedelta(minutes=15)
POLICY = accounts.LoginPolicy(
    max_failures=5, window=WINDOW, token_ttl=timedelta(hours=12),
    address_max_failures=20, account_max_failures=10, remember=timedelta(days=90),
)
OWNER_HOME, ATTACKER = "198.51.100.10", "203.0.113.66"


async def attempt(
    db: Database, email: str, password: str, address: str, *, minutes: float = 0,
) -> str | int:
    """``"ok"``, ``"wrong"``, or the Retry-After of a refusal, ``minutes`` after DEFAULT_NOW."""
    try:
        await accounts.log_in(db=db, hasher=HASHER, dummy_hash=DUMMY, email=email,
                              password=password, address=address, policy=POLICY,
                              now=DEFAULT_NOW + timedelta(minutes=minutes))
    except NotAuthenticated:
        return "wrong"
    except TooManyAttempts as err:
        return err.retry_after or 0
    return "ok"


async def owner(db: Database) -> m.User:
    return await make_user(db, role="agent", sites=[await make_site(db)])


async def test_an_attacker_guessing_from_many_addresses_never_locks_the_owner_out(
    db: Database,
) -> None:
    """Failures from everywhere else, far past every budget: the owner still logs in."""
    user = await owner(db)
    for n in range(30):
        for _ in range(6):
            await attempt(db, user.email, "guess", f"203.0.113.{n}")
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"
    # Also from an address that logged in before and then mistyped once.
    assert await attempt(db, user.email, "typo", OWNER_HOME) == "wrong"
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"


async def test_a_pair_over_its_budget_is_refused_even_the_right_password_until_it_ages_out(
    db: Database,
) -> None:
    user = await owner(db)
    for minute in range(5):
        assert await attempt(db, user.email, "guess", ATTACKER, minutes=minute) == "wrong"
    # Free again when the first failure leaves the 15-minute window: 15 minutes after it.
    assert await attempt(db, user.email, PASSWORD, ATTACKER, minutes=5) == 10 * 60
    # Refused attempts are not counted, so they do not push the end further.
    assert await attempt(db, user.email, "guess", ATTACKER, minutes=14) == 60
    assert await attempt(db, user.email, PASSWORD, ATTACKER, minutes=15) == "ok"


async def test_the_owner_logging_in_elsewhere_does_not_reset_the_attackers_budget(
    db: Database,
) -> None:
    user = await owner(db)
    for _ in range(4):
        assert await attempt(db, user.email, "guess", ATTACKER) == "wrong"
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"
    assert await attempt(db, user.email, "guess", ATTACKER) == "wrong"
    assert await attempt(db, user.email, "guess", ATTACKER) == 15 * 60


async def test_a_success_clears_its_own_pairs_failures(db: Database) -> None:
    user = await owner(db)
    for _ in range(4):
        assert await attempt(db, user.email, "typo", OWNER_HOME) == "wrong"
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"
    for _ in range(4):
        assert await attempt(db, user.email, "typo", OWNER_HOME) == "wrong"
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"


async def test_one_address_guessing_many_accounts_is_refused_on_accounts_it_never_opened(
    db: Database,
) -> None:
    """A shared address (a site's NAT) keeps working for accounts that logged in from it."""
    colleague, stranger = await owner(db), await owner(db)
    assert await attempt(db, colleague.email, PASSWORD, ATTACKER) == "ok"
    for n in range(20):
        assert await attempt(db, f"guess{n}@visio.test", "x", ATTACKER, minutes=n / 4) == "wrong"
    # Free when the oldest of the 20 failures leaves the window.
    assert await attempt(db, "guess@visio.test", "x", ATTACKER, minutes=5) == 10 * 60
    assert await attempt(db, stranger.email, PASSWORD, ATTACKER, minutes=5) == 10 * 60
    assert await attempt(db, colleague.email, PASSWORD, ATTACKER, minutes=5) == "ok"
    # Another address is not concerned at all.
    assert await attempt(db, stranger.email, PASSWORD, OWNER_HOME, minutes=5) == "ok"


async def test_an_account_under_attack_refuses_addresses_that_failed_on_it(
    db: Database,
) -> None:
    user = await owner(db)
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"
    assert await attempt(db, user.email, "typo", OWNER_HOME) == "wrong"
    for n in range(9):
        assert await attempt(db, user.email, "guess", f"203.0.113.{n}") == "wrong"
    # Ten failures on the account: an address that failed on it and never logged in
    # learns nothing more, whatever it sends...
    assert await attempt(db, user.email, "guess", "203.0.113.0") == 15 * 60
    # ...but an address that never failed on it, or that logged in before, still gets in.
    assert await attempt(db, user.email, PASSWORD, "192.0.2.1") == "ok"
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"


async def test_unknown_accounts_are_throttled_like_real_ones(db: Database) -> None:
    user = await owner(db)
    outcomes = [await attempt(db, "nobody@visio.test", "x", ATTACKER) for _ in range(6)]
    assert outcomes == ["wrong"] * 5 + [15 * 60]
    outcomes = [await attempt(db, user.email, "x", OWNER_HOME) for _ in range(6)]
    assert outcomes == ["wrong"] * 5 + [15 * 60]


async def test_old_failures_and_forgotten_addresses_are_purged(db: Database) -> None:
    user = await owner(db)
    assert await attempt(db, user.email, PASSWORD, OWNER_HOME) == "ok"
    assert await attempt(db, user.email, "guess", ATTACKER) == "wrong"
    now = DEFAULT_NOW + WINDOW
    assert await accounts.purge_login_records(
        db=db, window=WINDOW, remember=POLICY.remember, now=now) == 1
    assert await accounts.purge_login_records(
        db=db, window=WINDOW, remember=POLICY.remember, now=now + POLICY.remember) == 1
    assert await accounts.purge_login_records(
        db=db, window=WINDOW, remember=POLICY.remember, now=now + POLICY.remember) == 0


# ---------------------------------------------------------------- through the API


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[Client]:
    """The app behind a reverse proxy on the loopback (the test client's address)."""
    app = create_app(replace(settings, trusted_proxies=(ip_network("127.0.0.0/8"),)),
                     clock=lambda: DEFAULT_NOW)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def log_in_via(client: Client, email: str, password: str, forwarded: str) -> int:
    response = await client.post("/api/v1/auth/token", json={"email": email, "password": password},
                                 headers={"X-Forwarded-For": forwarded})
    return response.status


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    db: Database, behind_proxy: Client,
) -> None:
    user = await owner(db)
    statuses = [await log_in_via(behind_proxy, user.email, "guess", f"evil, {ATTACKER}")
                for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert await log_in_via(behind_proxy, user.email, PASSWORD, OWNER_HOME) == 200


async def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(
    db: Database, client: Client,
) -> None:
    user = await owner(db)
    statuses = [await log_in_via(client, user.email, "guess", f"192.0.2.{n}")
                for n in range(6)]
    assert statuses == [401] * 5 + [429]


# ---------------------------------------------------------------- client_address

TRUSTED = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def address_of(remote: str | None, *forwarded: str) -> str:
    headers = [("X-Forwarded-For", value) for value in forwarded]
    request = make_mocked_request("GET", "/", headers=headers)
    return client_address(request.clone(remote=remote) if remote else request, TRUSTED)


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy() -> None:
    assert address_of("192.0.2.7", "198.51.100.1") == "192.0.2.7"
    assert address_of("10.1.2.3", "198.51.100.1") == "198.51.100.1"
    assert address_of(None) == "unknown"


def test_the_header_is_walked_from_the_right_skipping_trusted_proxies() -> None:
    assert address_of("10.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.2") == "198.51.100.1"
    assert address_of("10.0.0.1", "6.6.6.6", "198.51.100.1, 10.0.0.2") == "198.51.100.1"
    # Only trusted hops: the leftmost is the client.
    assert address_of("10.0.0.1", "10.9.9.9, 10.0.0.2") == "10.9.9.9"
    # No header: the proxy itself.
    assert address_of("10.0.0.1") == "10.0.0.1"


def test_a_garbled_hop_makes_the_client_unknown_never_the_proxy() -> None:
    """A hop a trusted proxy wrote that is no address hides the client: "unknown"."""
    assert address_of("10.0.0.1", "198.51.100.1, not-an-ip, 10.0.0.2") == "unknown"
    assert address_of("10.0.0.1", "unknown") == "unknown"
    assert address_of("10.0.0.1", "_hidden") == "unknown"
    # An untrusted peer's header is not read at all.
    assert address_of("192.0.2.7", "_hidden") == "192.0.2.7"


def test_ports_brackets_zones_and_mapped_ipv4_are_normalised() -> None:
    assert address_of("10.0.0.1", "198.51.100.1:4711") == "198.51.100.1"
    assert address_of("10.0.0.1", "[2001:db8::1]:443") == "2001:db8::1"
    assert address_of("::ffff:192.0.2.9") == "192.0.2.9"
    assert address_of("fd00::1", "fe80::1%eth0") == "fe80::1"


# ---------------------------------------------------------------- IPv6 networks

SUBSCRIBER = "2001:db8:1:2"  # one /64: one subscriber's line, whatever address it takes


async def test_guesses_from_every_address_of_one_ipv6_64_share_its_budgets(
    db: Database, behind_proxy: Client,
) -> None:
    """200 wrong guesses from 200 addresses of one /64 (through a trusted proxy): the pair
    budget of that /64 stops them at the sixth, and its address budget across accounts;
    the owner, at home in another network, still gets in."""
    user = await owner(db)
    assert await log_in_via(behind_proxy, user.email, PASSWORD, OWNER_HOME) == 200
    statuses = [await log_in_via(behind_proxy, user.email, f"guess {n}",
                                 f"{SUBSCRIBER}:{n:x}:{n:x}:{n:x}:{n:x}")
                for n in range(1, 201)]
    assert statuses == [401] * 5 + [429] * 195
    # Other accounts, same /64: its address budget (20) is spent after 15 more failures.
    others = [await owner(db) for _ in range(4)]
    spread = [await log_in_via(behind_proxy, other.email, "guess", f"{SUBSCRIBER}::{n + 1:x}")
              for n, other in enumerate(others * 5)]
    assert spread.count(401) == 15
    assert spread[-1] == 429
    # The neighbouring /64 is somebody else: it has its own budgets.
    assert await log_in_via(behind_proxy, user.email, "guess", "2001:db8:1:3::1") == 401
    assert await log_in_via(behind_proxy, user.email, PASSWORD, OWNER_HOME) == 200


async def test_the_owners_known_ipv6_network_keeps_them_in(db: Database) -> None:
    """An owner who logged in from one address of a /64 is known at every address of it:
    the account budget spent by guesses from elsewhere does not refuse them."""
    user = await owner(db)
    assert await attempt(db, user.email, PASSWORD, f"{SUBSCRIBER}::a") == "ok"
    for n in range(12):
        await attempt(db, user.email, "guess", f"2001:db8:9:{n:x}::1")
    assert await attempt(db, user.email, "typo", f"{SUBSCRIBER}::b") == "wrong"
    assert await attempt(db, user.email, PASSWORD, f"{SUBSCRIBER}::c") == "ok"


def test_ipv6_addresses_are_counted_by_their_network_ipv4_alone() -> None:
    """The key of the budgets: a /64 (or the set length), an IPv4 address, or "unknown"."""
    assert POLICY.counted_as("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert replace(POLICY, ipv6_prefix=56).counted_as("2001:db8:1:2ff::1") == "2001:db8:1:200::/56"
    assert replace(POLICY, ipv6_prefix=128).counted_as("2001:db8::1") == "2001:db8::1"
    assert POLICY.counted_as("203.0.113.9") == "203.0.113.9"
    assert POLICY.counted_as("unknown") == "unknown"
    assert Settings.from_env({"VISIO_LOGIN_IPV6_PREFIX": "48"}).login_ipv6_prefix == 48
    with pytest.raises(ValueError, match="VISIO_LOGIN_IPV6_PREFIX"):
        Settings.from_env({"VISIO_LOGIN_IPV6_PREFIX": "0"})
