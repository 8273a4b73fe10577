"""One typed settings object, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote


class SettingsError(ValueError):
    """A configuration variable is missing or malformed."""


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _url(env: dict[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).rstrip("/")
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


def _postgres_url(env: dict[str, str], name: str) -> str:
    raw = env.get(name, "")
    if raw and not raw.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise SettingsError(f"{name} must be a postgresql:// URL, got {raw[:40]!r}")
    return raw


def _redis_url(env: dict[str, str], name: str) -> str:
    """One Redis (`redis://`, `rediss://`, `unix://`), or "" when unset."""
    raw = env.get(name, "")
    if raw and not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{name} names one Redis (redis://, rediss:// or unix://), got {raw!r}")
    return raw


CLUSTER_SCHEME = "redis+cluster://"


@dataclass(frozen=True, slots=True)
class ClusterSeeds:
    """The nodes a Redis Cluster client starts from (it learns the rest from them)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def cluster_nodes(url: str) -> ClusterSeeds:
    """`redis+cluster://[user:password@]host:port[,host:port...]`, read strictly."""
    rest = url.removeprefix(CLUSTER_SCHEME).rstrip("/")
    userinfo, at, hosts = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a cluster node is host:port, got {part!r}")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterSeeds(tuple(nodes), username, password)


def _redis_or_cluster_url(env: dict[str, str], name: str, default: str) -> str:
    """One Redis, or a Redis Cluster named by some of its nodes
    (`redis+cluster://[user:password@]host:port[,host:port...]`)."""
    raw = env.get(name) or default
    if not raw.startswith(CLUSTER_SCHEME):
        return _redis_url({name: raw}, name)
    try:
        cluster_nodes(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    return raw


PAYMENT_PROVIDERS = ("sandbox", "midtrans")
PAYOUT_PROVIDERS = ("bank_file", "iris")


def _providers(env: dict[str, str], sandbox_allowed: bool) -> tuple[str, ...]:
    raw = env.get("PANEN_PAYMENT_PROVIDERS")
    if raw is None or raw.strip() == "":
        return ("sandbox",) if sandbox_allowed else ()
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        if name not in PAYMENT_PROVIDERS:
            raise SettingsError(
                f"PANEN_PAYMENT_PROVIDERS: unknown provider {name!r}"
                f" (known: {', '.join(PAYMENT_PROVIDERS)})"
            )
    if "sandbox" in names and not sandbox_allowed:
        raise SettingsError(
            "the sandbox provider lets anyone pay by approving their own payment: only with"
            " PANEN_ENV=development, or PANEN_SANDBOX=1 on purpose"
        )
    return names


DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/panen"
MIDTRANS_SNAP_SANDBOX = "https://app.sandbox.midtrans.com/snap/v1"
MIDTRANS_API_SANDBOX = "https://api.sandbox.midtrans.com"
MIDTRANS_IRIS_SANDBOX = "https://app.sandbox.midtrans.com/iris/api/v1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The development default is deliberately public: production must set its own.
DEV_SECRET_KEY = "dev-insecure-secret-change-me-in-production"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # A streaming replica of it for reads that tolerate a little lag; none when "".
    database_replica_url: str = ""
    redis_url: str = DEFAULT_REDIS_URL
    # The job queue's Redis (arq): one Redis of its own, or REDIS_URL's when unset.
    queue_url: str = ""
    redis_prefix: str = "panen"
    secret_key: str = DEV_SECRET_KEY
    signing_key_file: Path = field(default_factory=lambda: Path(".panen/signing-key.pem"))
    platform_fee_bps: int = 500
    token_ttl_s: int = 7 * 24 * 3600
    log_format: str = "text"
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024
    reservation_ttl_s: int = 600
    ticker_hz: float = 4.0
    # Sockets: a ping this often; a socket silent (or not reading) for as long after it is
    # cut off. Shorter than the idle timeout of any proxy in front.
    ws_ping_s: float = 20.0
    environment: str = "development"
    # Energy points rules as JSON (parsed and checked by donations.energy.rules).
    energy_rules: str = ""
    # Raise, not log, when a task asks for a second database connection (the tests set it).
    db_strict: bool = False
    # A web process's database connections (and as many again in bursts), and how long a
    # request waits for one before it is answered 503.
    db_pool_size: int = 10
    db_pool_timeout_s: float = 2.0
    # The payment providers this deployment offers, the first the default for new orders
    # and gifts. The sandbox (anyone "pays" by approving their own payment) only where
    # development is chosen, or enabled on purpose for a staging deployment.
    payment_providers: tuple[str, ...] = ("sandbox",)
    # Midtrans: the server key signs our calls and its notifications; the base URLs point
    # at Midtrans's sandbox or production, or at `panen emulator` in tests and the demo.
    midtrans_server_key: str = ""
    midtrans_client_key: str = ""
    midtrans_snap_url: str = MIDTRANS_SNAP_SANDBOX
    midtrans_api_url: str = MIDTRANS_API_SANDBOX
    # Where Midtrans sends its notifications and returns the payer (our own address).
    public_url: str = "http://127.0.0.1:8000"
    # Farmer payouts: through Midtrans Iris, or a bank file an operator uploads.
    payout_provider: str = "bank_file"
    midtrans_iris_url: str = MIDTRANS_IRIS_SANDBOX
    iris_creator_key: str = ""
    iris_approver_key: str = ""
    iris_merchant_key: str = ""  # signs Iris's callbacks
    # A delivered box completes this long after delivery unless its buyer confirms it
    # first (or it is returned): until then its sales' money is held from payouts and its
    # pledges from disbursements.
    complete_after_s: int = 3 * 24 * 3600
    payout_minimum: int = 10_000  # a farmer's smaller balance waits for the next run
    # Per client address, across processes: logins a minute, registrations an hour, and
    # sockets at once (0: no limit; a carrier's NAT puts many phones behind one address).
    logins_per_address: int = 60
    registrations_per_address: int = 20
    sockets_per_address: int = 200

    @property
    def production(self) -> bool:
        return self.environment != "development"

    @property
    def sandbox(self) -> bool:
        return "sandbox" in self.payment_providers

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        prefix = e.get("REDIS_PREFIX", "panen") or "panen"
        if not all(c.isalnum() or c in "-_.:" for c in prefix):
            raise SettingsError(f"REDIS_PREFIX may hold letters, digits and -_.: only: {prefix!r}")
        log_format = e.get("PANEN_LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise SettingsError("PANEN_LOG_FORMAT must be 'text' or 'json'")
        # Safe by default: development (its public key, the sandbox) must be chosen.
        environment = e.get("PANEN_ENV") or "production"
        if environment not in ("development", "production"):
            raise SettingsError("PANEN_ENV must be 'development' or 'production'")
        secret = e.get("PANEN_SECRET_KEY") or ""
        if environment == "production":
            if not secret or secret == DEV_SECRET_KEY:
                raise SettingsError(
                    "PANEN_SECRET_KEY must be set to a secret of your own (at least 32"
                    " characters); for a development machine, set PANEN_ENV=development"
                )
            if len(secret) < 32:
                raise SettingsError("PANEN_SECRET_KEY must be at least 32 characters")
        sandbox_allowed = environment == "development" or e.get("PANEN_SANDBOX") == "1"
        providers = _providers(e, sandbox_allowed)
        server_key = e.get("PANEN_MIDTRANS_SERVER_KEY", "")
        if "midtrans" in providers and not server_key:
            raise SettingsError(
                "PANEN_PAYMENT_PROVIDERS names midtrans: set PANEN_MIDTRANS_SERVER_KEY"
            )
        payout_provider = e.get("PANEN_PAYOUT_PROVIDER") or "bank_file"
        if payout_provider not in PAYOUT_PROVIDERS:
            raise SettingsError(f"PANEN_PAYOUT_PROVIDER is one of {', '.join(PAYOUT_PROVIDERS)}")
        if payout_provider == "iris" and not (
            e.get("PANEN_IRIS_CREATOR_KEY")
            and e.get("PANEN_IRIS_APPROVER_KEY")
            and e.get("PANEN_IRIS_MERCHANT_KEY")
        ):
            raise SettingsError(
                "PANEN_PAYOUT_PROVIDER=iris needs PANEN_IRIS_CREATOR_KEY,"
                " PANEN_IRIS_APPROVER_KEY and PANEN_IRIS_MERCHANT_KEY"
            )
        redis_url = _redis_or_cluster_url(e, "REDIS_URL", DEFAULT_REDIS_URL)
        queue_url = _redis_url(e, "PANEN_QUEUE_URL")
        if redis_url.startswith(CLUSTER_SCHEME) and not queue_url:
            # arq's queue is a handful of keys its Lua scripts touch together: one Redis.
            raise SettingsError(
                "with a Redis Cluster as REDIS_URL, set PANEN_QUEUE_URL to one Redis"
            )
        return cls(
            database_url=e.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            database_replica_url=_postgres_url(e, "DATABASE_REPLICA_URL"),
            redis_url=redis_url,
            queue_url=queue_url,
            redis_prefix=prefix,
            secret_key=secret or DEV_SECRET_KEY,
            signing_key_file=Path(e.get("PANEN_SIGNING_KEY_FILE") or ".panen/signing-key.pem"),
            platform_fee_bps=_int(e, "PANEN_PLATFORM_FEE_BPS", 500, 0, 10_000),
            token_ttl_s=_int(e, "PANEN_TOKEN_TTL_S", 7 * 24 * 3600, 60, 365 * 24 * 3600),
            log_format=log_format,
            log_level=(e.get("PANEN_LOG_LEVEL") or "INFO").upper(),
            max_body_bytes=_int(e, "PANEN_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            reservation_ttl_s=_int(e, "PANEN_RESERVATION_TTL_S", 600, 5, 24 * 3600),
            ticker_hz=_float(e, "PANEN_TICKER_HZ", 4.0, 0.5, 50.0),
            ws_ping_s=_float(e, "PANEN_WS_PING_S", 20.0, 1.0, 300.0),
            environment=environment,
            energy_rules=e.get("PANEN_ENERGY_RULES", ""),
            db_strict=e.get("PANEN_DB_STRICT", "") == "1",
            db_pool_size=_int(e, "PANEN_DB_POOL_SIZE", 10, 1, 200),
            db_pool_timeout_s=_float(e, "PANEN_DB_POOL_TIMEOUT_S", 2.0, 0.1, 60.0),
            payment_providers=providers,
            midtrans_server_key=server_key,
            midtrans_client_key=e.get("PANEN_MIDTRANS_CLIENT_KEY", ""),
            midtrans_snap_url=_url(e, "PANEN_MIDTRANS_SNAP_URL", MIDTRANS_SNAP_SANDBOX),
            midtrans_api_url=_url(e, "PANEN_MIDTRANS_API_URL", MIDTRANS_API_SANDBOX),
            public_url=_url(e, "PANEN_PUBLIC_URL", "http://127.0.0.1:8000"),
            payout_provider=payout_provider,
            midtrans_iris_url=_url(e, "PANEN_IRIS_URL", MIDTRANS_IRIS_SANDBOX),
            iris_creator_key=e.get("PANEN_IRIS_CREATOR_KEY", ""),
            iris_approver_key=e.get("PANEN_IRIS_APPROVER_KEY", ""),
            iris_merchant_key=e.get("PANEN_IRIS_MERCHANT_KEY", ""),
            complete_after_s=_int(e, "PANEN_COMPLETE_AFTER_S", 3 * 24 * 3600, 0, 90 * 24 * 3600),
            payout_minimum=_int(e, "PANEN_PAYOUT_MINIMUM", 10_000, 1, 10**13),
            logins_per_address=_int(e, "PANEN_LOGINS_PER_ADDRESS", 60, 0, 10**6),
            registrations_per_address=_int(e, "PANEN_REGISTRATIONS_PER_ADDRESS", 20, 0, 10**6),
            sockets_per_address=_int(e, "PANEN_SOCKETS_PER_ADDRESS", 200, 0, 10**6),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()


def check_can_serve(settings: Settings) -> None:
    """What a process checks before it serves: in production the transparency log's
    signing key must already exist (a new key would be a new log, silently), made on
    purpose with `panen keygen`."""
    if settings.production and not settings.signing_key_file.exists():
        raise SettingsError(
            f"the log's signing key {settings.signing_key_file} does not exist: create it"
            " once with `panen keygen` (PANEN_SIGNING_KEY_FILE names where)"
        )
