"""Settings come from VISIO_* variables only, with documented defaults."""

from ipaddress import ip_network
from pathlib import Path

import pytest

from visio.settings import DEFAULT_DATABASE_URL, Settings


def test_defaults_serve_sqlite_on_loopback() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.turn_ttl_seconds == 4 * 3600


def test_lists_are_comma_separated_and_turn_lifetime_is_capped() -> None:
    settings = Settings.from_env({
        "VISIO_TURN_URLS": "turn:a:3478?transport=udp, turns:a:443?transport=tcp",
        "VISIO_TURN_SECRETS": "new,old",
        "VISIO_TURN_TTL_SECONDS": "86400",
        "VISIO_BASE_URL": "https://visio.example/",
    })
    assert settings.turn_urls == ("turn:a:3478?transport=udp", "turns:a:443?transport=tcp")
    assert settings.turn_secrets == ("new", "old")
    assert settings.turn_ttl_seconds == 4 * 3600
    assert settings.base_url == "https://visio.example"


def test_unknown_visio_variables_are_kept_to_report_typos() -> None:
    settings = Settings.from_env({"VISIO_DATABSE_URL": "x", "HOME": "/root"})
    assert set(settings.extra) == {"VISIO_DATABSE_URL"}


def test_a_secret_file_is_created_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    first = Settings.from_env({"VISIO_SECRET_KEY_FILE": str(path)}).secret_key
    second = Settings.from_env({"VISIO_SECRET_KEY_FILE": str(path)}).secret_key
    assert first == second
    assert len(first) >= 48
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_throttling_and_search_limits_have_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.login_max_failures, settings.login_address_max_failures,
            settings.login_account_max_failures) == (5, 20, 10)
    assert (settings.login_window_seconds, settings.login_remember_days) == (900, 90)
    assert settings.trusted_proxies == ()
    assert (settings.search_rate_per_minute, settings.search_concurrency,
            settings.search_max_wait_seconds) == (60, 4, 2.0)


def test_trusted_proxies_are_parsed_once_into_networks() -> None:
    settings = Settings.from_env({"VISIO_TRUSTED_PROXIES": " 10.0.0.5, 172.16.0.0/12,fd00::/8 "})
    assert settings.trusted_proxies == (
        ip_network("10.0.0.5/32"), ip_network("172.16.0.0/12"), ip_network("fd00::/8"))


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.internal", "10.0.0.1/8"])
def test_a_bad_trusted_proxy_stops_start_up_with_a_clear_error(value: str) -> None:
    with pytest.raises(ValueError, match=r"VISIO_TRUSTED_PROXIES: '.*' is not an IP address"):
        Settings.from_env({"VISIO_TRUSTED_PROXIES": f"10.0.0.5,{value}"})
