"""Django settings, read from the environment (STYLE §12).

Every difference between machines is an environment variable. With nothing set the project runs
on its embedded defaults: SQLite in the project folder, a local-memory cache and the in-memory
channel layer. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis.
"""

import warnings
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from ops.logging import logging_config
from ops.sentry import sentry_init

BASE_DIR = Path(__file__).resolve().parent.parent


class Env(environ.Env):
    """django-environ, but a malformed value names its variable instead of a bare ValueError."""

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(f"{var} has an invalid value: {exc}") from exc


env = Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
TESTING = env.bool("DJANGO_TESTING", default=False)

# Without DEBUG a secret key is mandatory; manage.py and asgi.py print this message as one line.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string, or set "
            "DJANGO_DEBUG=1 for local development (`make run` writes one into .env)."
        )
    SECRET_KEY = "insecure-development-key-not-for-production"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "channels",
    "core",
    "ops",
    "points",
    "markets",
    "betting",
    "discordbot",
    "dashboard",
    "drip",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "ops.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    with warnings.catch_warnings():  # an unknown scheme is reported below, in one line
        warnings.simplefilter("ignore")
        DATABASES = {"default": env.db_url_config(DATABASE_URL)}
except ValueError as exc:  # e.g. a port that is not a number
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
_db = DATABASES["default"]
# Only the two supported engines; anything else would fail later with a traceback that does
# not name the variable (the scheme only: the URL may hold a password).
if _db.get("ENGINE") not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured(
        f"DATABASE_URL has the unsupported scheme {DATABASE_URL.partition(':')[0]!r}; "
        "use postgres://user:password@host:port/name or sqlite:///path/to/file.sqlite3."
    )
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A stuck lock becomes an error instead of a hang (issue 7); pooled connections through
    # psycopg's pool when DB_POOL_MAX_SIZE > 0.
    _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    _options = _db.setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
    _options.setdefault(
        "options",
        " ".join(
            f"-c {name}={env.int(var, default=default)}"
            for name, var, default in (
                ("statement_timeout", "DB_STATEMENT_TIMEOUT_MS", 30_000),
                ("lock_timeout", "DB_LOCK_TIMEOUT_MS", 10_000),
                (
                    "idle_in_transaction_session_timeout",
                    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                    60_000,
                ),
            )
        ),
    )
    _options.setdefault("application_name", env.str("DB_APPLICATION_NAME", default="pm"))
    # Bounded waits on a database that stops answering (issue 12): statement_timeout is enforced
    # by the server, so a host that vanished or a dropped network path would leave a query in
    # flight waiting forever. Keepalive probes find a silent idle peer after
    # idle + interval × count seconds; tcp_user_timeout fails a connection whose sent data stays
    # unacknowledged that long. (A server process that is stopped but whose kernel still answers
    # TCP is not caught here; that needs a client-side budget.)
    _options.setdefault("keepalives", 1)
    _options.setdefault("keepalives_idle", env.int("DB_KEEPALIVES_IDLE", default=10))
    _options.setdefault("keepalives_interval", env.int("DB_KEEPALIVES_INTERVAL", default=3))
    _options.setdefault("keepalives_count", env.int("DB_KEEPALIVES_COUNT", default=3))
    _options.setdefault("tcp_user_timeout", env.int("DB_TCP_USER_TIMEOUT_MS", default=15_000))
    if env.bool("DB_PGBOUNCER", default=False):
        # Through PgBouncer in transaction mode (docs/deploy.md §8): no server-side state may
        # outlive a transaction. PgBouncer refuses the `options` startup parameter, so the
        # timeouts above are set on the role instead (ALTER ROLE … SET, as the guide says), and
        # psycopg never prepares a statement (Django binds on the client already).
        _options.pop("options", None)
        _options["prepare_threshold"] = None
    if env.int("DB_POOL_MAX_SIZE", default=0) > 0:
        _options["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DB_POOL_MAX_SIZE"),
            "timeout": env.int("DB_POOL_TIMEOUT", default=10),
        }
    else:
        _db.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))
    # A persistent or pooled connection that died while idle (a database restart, a proxy's
    # idle timeout) is replaced before use, not failed on. With the pool, Django passes this
    # on as psycopg_pool's `check`.
    _db.setdefault("CONN_HEALTH_CHECKS", True)
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["ENGINE"] = "django_prometheus.db.backends.sqlite3"
    # SQLite serialises writers; wait for the lock instead of failing at once (the busy
    # timeout), take the write lock when a transaction begins (IMMEDIATE: no reader-to-writer
    # upgrade that fails at once), and let readers go on while one writer writes (WAL). The
    # bot, the web server and the market clock share the file in one `serve` process.
    _db.setdefault("OPTIONS", {}).setdefault("timeout", 20)
    _db["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    _db["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")

# Read replicas (issue 24, core.replicas): streaming standbys of the primary, comma-separated.
# Lag-tolerant reads go to them; each gets the primary's options with a short connect timeout
# (a replica that is down is skipped, not waited for). Tests mirror them onto `default`.
DATABASE_REPLICA_URLS = [u.strip() for u in env.str("DATABASE_REPLICA_URLS", default="").split(",")]
DATABASE_REPLICA_MAX_LAG = env.float("DATABASE_REPLICA_MAX_LAG", default=2.0)
for _i, _url in enumerate(u for u in DATABASE_REPLICA_URLS if u):
    if _db["ENGINE"] == "django_prometheus.db.backends.sqlite3":
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs PostgreSQL (DATABASE_URL).")
    try:
        _replica = env.db_url_config(_url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS has an invalid URL: {exc}") from exc
    _replica["ENGINE"] = _db["ENGINE"]
    _replica["OPTIONS"] = {
        **{k: v for k, v in _db.get("OPTIONS", {}).items() if k != "pool"},
        "connect_timeout": env.int("DB_REPLICA_CONNECT_TIMEOUT", default=1),
    }
    for _key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
        _replica[_key] = _db.get(_key, 0)
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_i}"] = _replica
DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channel layer ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis with hit/miss counters for /metrics (django_cache_*).
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="pm"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                # A cache outage degrades (rate limits open, no caching); it never breaks a trade.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 caps a pool at 100 connections and then refuses; a burst of
                # dashboard sockets (every page reconnecting after a deploy) needs more. Its
                # default 5 s read timeout equals channels-redis' 5 s blocking receive, so an
                # idle socket's consumer died with "Timeout reading"; reads get 15 s.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env.int("CHANNELS_REDIS_MAX_CONNECTIONS", default=1000),
                        "socket_timeout": 15,
                        "socket_connect_timeout": 2,
                    }
                ],
                "prefix": env.str("CHANNELS_PREFIX", default="pm"),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# --- Security (production defaults; `manage.py check --deploy` is clean with them) ----------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Probes and Prometheus talk plain HTTP to the app server directly, behind the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
# Proxies whose X-Forwarded-For is believed (ops.middleware.client_ip): the address they saw
# is the client's. Anything else connecting is the client itself.
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=["127.0.0.1", "::1"])
# Admin login: 10 POSTs a minute per client address (config/urls.py), counted in the shared
# cache. If the cache is down the limit is lifted rather than locking moderators out.
ADMIN_LOGIN_RATE = env.str("ADMIN_LOGIN_RATE", default="10/m")
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "ops.middleware.client_ip_for_ratelimit"
RATELIMIT_FAIL_OPEN = env.bool("RATELIMIT_FAIL_OPEN", default=True)
SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# --- Discord, Sentry, metrics ---------------------------------------------------------------
DISCORD_TOKEN = env.str("DISCORD_TOKEN", default="")
DISCORD_APPLICATION_ID = env.str("DISCORD_APPLICATION_ID", default="")
DISCORD_DEV_GUILD_ID = env.str("DISCORD_DEV_GUILD_ID", default="")
DISCORD_API_BASE = env.str("DISCORD_API_BASE", default="")
DISCORD_GATEWAY_URL = env.str("DISCORD_GATEWAY_URL", default="")
# Bot tuning: database threads (0 = 1 on SQLite, 8 on PostgreSQL), seconds between notification
# DMs, and the market clock and notifier intervals.
DISCORD_DB_WORKERS = env.int("DISCORD_DB_WORKERS", default=0)
DISCORD_DM_INTERVAL = env.float("DISCORD_DM_INTERVAL", default=0.5)
DISCORD_TICK_SECONDS = env.float("DISCORD_TICK_SECONDS", default=30.0)
DISCORD_NOTIFY_SECONDS = env.float("DISCORD_NOTIFY_SECONDS", default=5.0)
# Leases of the singleton jobs (notifier, market clock, DRIP worker; core.leases): a lease lasts
# LEASE_SECONDS after its holder's last renewal; holders renew and standbys ask every
# LEASE_RENEW_SECONDS. A dead holder's job moves within their sum.
LEASE_SECONDS = env.float("LEASE_SECONDS", default=15.0)
LEASE_RENEW_SECONDS = env.float("LEASE_RENEW_SECONDS", default=5.0)
if not 0 < LEASE_RENEW_SECONDS < LEASE_SECONDS:
    raise ImproperlyConfigured(
        f"LEASE_RENEW_SECONDS ({LEASE_RENEW_SECONDS:g}) must be more than 0 and less than "
        f"LEASE_SECONDS ({LEASE_SECONDS:g}): a holder renews before its lease runs out."
    )
# DRIP realm points bridge (docs/drip.md). PM_ENCRYPTION_KEY: comma-separated Fernet keys, the
# first encrypts; without it `/settings drip` refuses to store an API key.
PM_ENCRYPTION_KEY = env.str("PM_ENCRYPTION_KEY", default="")
DRIP_API_BASE = env.str("DRIP_API_BASE", default="https://api.drip.re/api/v1")
DRIP_TIMEOUT_SECONDS = env.float("DRIP_TIMEOUT_SECONDS", default=10.0)
DRIP_BREAKER_FAILURES = env.int("DRIP_BREAKER_FAILURES", default=5)
DRIP_BREAKER_RECOVERY_SECONDS = env.float("DRIP_BREAKER_RECOVERY_SECONDS", default=30.0)
DRIP_WORKER_INTERVAL = env.float("DRIP_WORKER_INTERVAL", default=5.0)
DRIP_SENDING_STALE_SECONDS = env.float("DRIP_SENDING_STALE_SECONDS", default=120.0)
# DRIP's limit per realm, shared by the bot and the worker through Redis (Free plan: 24/min).
DRIP_RATE_LIMIT_PER_MINUTE = env.int("DRIP_RATE_LIMIT_PER_MINUTE", default=24)
DRIP_RATE_WINDOW_SECONDS = env.float("DRIP_RATE_WINDOW_SECONDS", default=60.0)
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# How often the ledger audit behind `pm_ledger_solvent` may run (seconds; ops/metrics.py).
METRICS_AUDIT_INTERVAL = env.int("METRICS_AUDIT_INTERVAL", default=300)
METRICS_SCRAPE_TIMEOUT = env.float("METRICS_SCRAPE_TIMEOUT", default=5.0)
PROMETHEUS_EXPORT_MIGRATIONS = False
# Health checks (ops/health.py): each check's deadline, and how many may hang at once.
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=2.0)
HEALTH_MAX_INFLIGHT = env.int("HEALTH_MAX_INFLIGHT", default=16)
HEALTH_DATABASE_ALIAS = "default"
HEALTH_CACHE_ALIAS = "default"

# --- Guild defaults (DOMAIN §2); each guild's GuildSettings row starts from these ----------
PM_GUILD_DEFAULTS = {
    "starting_balance": env.int("PM_STARTING_BALANCE", default=1000),
    "daily_bonus": env.int("PM_DAILY_BONUS", default=100),
    "max_bet": env.int("PM_MAX_BET", default=1_000_000),
    "default_liquidity": env.int("PM_DEFAULT_LIQUIDITY", default=1000),
    "fee_bps": env.int("PM_FEE_BPS", default=0),
    "min_resolution_votes": env.int("PM_MIN_RESOLUTION_VOTES", default=2),
    "auto_refund_hours": env.int("PM_AUTO_REFUND_HOURS", default=120),
    "requests_per_minute": env.int("PM_GUILD_REQUESTS_PER_MINUTE", default=100),
    "resolution_mode": env.str("PM_RESOLUTION_MODE", default="vote"),
    "dispute_window_minutes": env.int("PM_DISPUTE_WINDOW_MINUTES", default=60),
    "dispute_hold_hours": env.int("PM_DISPUTE_HOLD_HOURS", default=48),
    "conflict_of_interest": env.bool("PM_CONFLICT_OF_INTEREST", default=True),
}

# The member and guild directory (issue 13): a member's name is stored at most once per this
# many seconds (points.services.member_seen). The namespace is not configuration: tests set it
# to keep their gates apart in a shared cache.
PM_MEMBER_SEEN_EVERY = env.int("PM_MEMBER_SEEN_EVERY", default=300)
PM_DIRECTORY_NAMESPACE = ""

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_JSON = env.bool("LOG_JSON", default=not DEBUG)
# One line per event: JSON in production, readable in development; both carry the request or
# interaction id, guild, user, market and error id (ops/logging.py).
LOGGING = logging_config(level=LOG_LEVEL, json_lines=LOG_JSON)

# --- Sentry ---------------------------------------------------------------------------------
# Initialised here so errors during start-up are reported too; the scrubber removes Discord
# tokens from every event (ops/sentry.py). Tests never report.
if SENTRY_DSN and not TESTING:
    sentry_init(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        release=SENTRY_RELEASE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )
