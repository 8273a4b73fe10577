import pytest

from core.settings import Settings, SettingsError, cluster_nodes


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


DEV = {"PANEN_ENV": "development"}


@pytest.mark.parametrize(
    "env",
    [
        {**DEV, "PANEN_PLATFORM_FEE_BPS": "12.5"},
        {**DEV, "PANEN_PLATFORM_FEE_BPS": "10001"},
        {**DEV, "PANEN_PLATFORM_FEE_BPS": "-1"},
        {**DEV, "REDIS_PREFIX": "has space"},
        {**DEV, "PANEN_LOG_FORMAT": "xml"},
        {"PANEN_ENV": "staging"},
    ],
)
def test_malformed_settings_stop_the_process_with_a_clear_error(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "env",
    [
        {},  # nothing chosen: production, which needs a secret of its own
        {"PANEN_ENV": "production"},
        {
            "PANEN_ENV": "production",
            "PANEN_SECRET_KEY": "dev-insecure-secret-change-me-in-production",
        },
        {"PANEN_SECRET_KEY": "too short"},
    ],
)
def test_without_a_secret_of_its_own_nothing_starts_unless_development_is_chosen(env):
    with pytest.raises(SettingsError, match="PANEN_SECRET_KEY"):
        Settings.from_env(env)


def test_the_sandbox_exists_only_in_development_or_when_enabled_on_purpose():
    secret = {"PANEN_SECRET_KEY": "k" * 40}
    assert Settings.from_env(DEV).sandbox
    assert not Settings.from_env(secret).sandbox
    assert Settings.from_env({**secret, "PANEN_SANDBOX": "1"}).sandbox


def test_production_will_not_serve_without_its_signing_key(tmp_path):
    from core.settings import check_can_serve

    settings = Settings.from_env(
        {"PANEN_SECRET_KEY": "k" * 40, "PANEN_SIGNING_KEY_FILE": str(tmp_path / "k.pem")}
    )
    with pytest.raises(SettingsError, match="panen keygen"):
        check_can_serve(settings)
    check_can_serve(Settings.from_env({**DEV, "PANEN_SIGNING_KEY_FILE": str(tmp_path / "x")}))


def test_payment_providers_are_chosen_per_deployment_and_midtrans_needs_its_key():
    secret = {"PANEN_SECRET_KEY": "k" * 40}
    assert Settings.from_env(DEV).payment_providers == ("sandbox",)
    assert Settings.from_env(secret).payment_providers == ()
    with pytest.raises(SettingsError, match="sandbox"):
        Settings.from_env({**secret, "PANEN_PAYMENT_PROVIDERS": "sandbox"})
    with pytest.raises(SettingsError, match="PANEN_MIDTRANS_SERVER_KEY"):
        Settings.from_env({**secret, "PANEN_PAYMENT_PROVIDERS": "midtrans"})
    with pytest.raises(SettingsError, match="unknown provider"):
        Settings.from_env({**DEV, "PANEN_PAYMENT_PROVIDERS": "paypal"})
    live = Settings.from_env(
        {
            **secret,
            "PANEN_PAYMENT_PROVIDERS": "midtrans",
            "PANEN_MIDTRANS_SERVER_KEY": "Mid-server-x",
            "PANEN_MIDTRANS_API_URL": "https://api.midtrans.com/",
        }
    )
    assert live.payment_providers == ("midtrans",) and not live.sandbox
    assert live.midtrans_api_url == "https://api.midtrans.com"


def test_a_redis_cluster_is_named_by_its_nodes_and_needs_a_queue_redis_of_its_own():
    s = Settings.from_env(
        {
            **DEV,
            "REDIS_URL": "redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001",
            "PANEN_QUEUE_URL": "redis://10.0.0.9:6379/0",
        }
    )
    seeds = cluster_nodes(s.redis_url)
    assert seeds.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (seeds.username, seeds.password) == (None, "s3cret")
    # arq's queue is several keys its scripts touch together: it cannot live on a cluster
    with pytest.raises(SettingsError, match="PANEN_QUEUE_URL"):
        Settings.from_env({**DEV, "REDIS_URL": "redis+cluster://10.0.0.1:7000"})
    with pytest.raises(SettingsError, match="PANEN_QUEUE_URL"):
        Settings.from_env(
            {
                **DEV,
                "REDIS_URL": "redis+cluster://10.0.0.1:7000",
                "PANEN_QUEUE_URL": "redis+cluster://10.0.0.1:7000",
            }
        )


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://",
        "redis+cluster://10.0.0.1",
        "redis+cluster://10.0.0.1:7000,",
        "redis+cluster://10.0.0.1:port",
        "redis+cluster://10.0.0.1:70000",
        "memcached://10.0.0.1:11211",
    ],
)
def test_a_malformed_redis_url_stops_the_process(url):
    env = {**DEV, "REDIS_URL": url, "PANEN_QUEUE_URL": "redis://q:6379/0"}
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env(env)
