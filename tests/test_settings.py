import pytest

from core.settings import Settings, SettingsError


def test_settings_read_every_documented_variable():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h:5/d",
            "REDIS_URL": "unix:///tmp/r.sock",
            "REDIS_PREFIX": "run7",
            "PANEN_SECRET_KEY": "s" * 40,
            "PANEN_SIGNING_KEY_FILE": "/tmp/k.pem",
            "PANEN_PLATFORM_FEE_BPS": "250",
        }
    )
    assert (s.database_url, s.redis_url, s.redis_prefix) == (
        "postgresql://u@h:5/d",
        "unix:///tmp/r.sock",
        "run7",
    )
    assert s.secret_key == "s" * 40
    assert str(s.signing_key_file) == "/tmp/k.pem"
    assert s.platform_fee_bps == 250


@pytest.mark.parametrize(
    "env",
    [
        {"PANEN_PLATFORM_FEE_BPS": "12.5"},
        {"PANEN_PLATFORM_FEE_BPS": "10001"},
        {"PANEN_PLATFORM_FEE_BPS": "-1"},
        {"REDIS_PREFIX": "has space"},
        {"PANEN_LOG_FORMAT": "xml"},
        {"PANEN_ENV": "production"},  # without its own secret key
    ],
)
def test_malformed_settings_stop_the_process_with_a_clear_error(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)
