"""Settings come from VISIO_* variables only, with documented defaults."""

from pathlib import Path

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
