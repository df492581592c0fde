"""Django settings, read from the environment (see ``.env.example`` and README).

Two profiles, chosen by ``DJANGO_DEBUG``:

* development (``DJANGO_DEBUG=1``): SQLite under ``DATA_DIR``, jobs run in-process,
  and a secret key and data-encryption key are generated once into ``DATA_DIR/.secrets``;
* production (the default): ``SECRET_KEY``, ``DATA_ENCRYPTION_KEY`` and ``ALLOWED_HOSTS``
  are required, HTTPS is enforced, and ``manage.py check --deploy`` is clean.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from clearinghouse.env import env_bool, env_float, env_int, env_list, env_path, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)

# --- where real data lives -------------------------------------------------------
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "var")
CUSTODY_DIR = DATA_DIR / "custody"          # encrypted real datasets, read only via clearinghouse.custody
UPLOAD_TEMP_DIR = DATA_DIR / "upload-tmp"   # plaintext upload spool, same protection, removed per request
UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
MODELS_DIR = DATA_DIR / "models"            # trained generators (they were fitted on real rows: private)
RELEASES_DIR = DATA_DIR / "releases"        # synthetic releases: data.csv, data.parquet, datasheet.json
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
for _root in (STATIC_ROOT,):
    if DATA_DIR == _root or DATA_DIR.is_relative_to(_root) or _root.is_relative_to(DATA_DIR):
        raise ImproperlyConfigured(f"DATA_DIR ({DATA_DIR}) must not overlap a served directory ({_root}).")


def _dev_secret(name: str, make: callable) -> str:
    """A development-only secret, generated once and kept under DATA_DIR/.secrets."""
    folder = DATA_DIR / ".secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        path.write_text(make(), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


# --- secrets -----------------------------------------------------------------------
SECRET_KEY = env_secret("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DJANGO_DEBUG is off.")
    SECRET_KEY = _dev_secret("secret-key", lambda: secrets.token_urlsafe(50))
elif not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY is too weak: use at least 50 random characters.")


def _fernet_keys(raw: str) -> list[str]:
    keys = [k.strip() for k in raw.split(",")]
    for position, key in enumerate(keys, start=1):
        try:
            ok = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
        except (binascii.Error, ValueError, UnicodeEncodeError):
            ok = False
        if not ok:
            raise ImproperlyConfigured(
                f"DATA_ENCRYPTION_KEY item {position} is not a 32-byte url-safe base64 key "
                "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
            )
    return keys


_raw_data_key = env_secret("DATA_ENCRYPTION_KEY")
if _raw_data_key is None:
    if not DEBUG:
        raise ImproperlyConfigured("DATA_ENCRYPTION_KEY (or DATA_ENCRYPTION_KEY_FILE) is required when DJANGO_DEBUG is off.")
    _raw_data_key = _dev_secret(
        "data-encryption-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
    )
# The first key encrypts; every key decrypts (rotation: prepend the new key).
DATA_ENCRYPTION_KEYS = _fernet_keys(_raw_data_key)
# Decrypted tables are kept in each process's memory (least recently used first) so that a
# verification does not decrypt the whole dataset per request: at most CUSTODY_CACHE_BYTES in all,
# each for at most CUSTODY_CACHE_SECONDS (then dropped, used or not). A rewritten file or a changed
# DATA_ENCRYPTION_KEY misses. Trade-off: decrypted real rows stay in the worker's memory that long;
# 0 for either switches the cache off (every read decrypts). See clearinghouse/custody.py.
CUSTODY_CACHE_BYTES = env_int("CUSTODY_CACHE_BYTES", 512 * 1024 * 1024, minimum=0)
CUSTODY_CACHE_SECONDS = env_int("CUSTODY_CACHE_SECONDS", 300, minimum=0, maximum=86_400)
# The same for a release's (public) synthetic rows, which every verification reads too.
RELEASE_CACHE_BYTES = env_int("RELEASE_CACHE_BYTES", 256 * 1024 * 1024, minimum=0)
RELEASE_CACHE_SECONDS = env_int("RELEASE_CACHE_SECONDS", 300, minimum=0, maximum=86_400)

# --- hosts and HTTPS ---------------------------------------------------------------
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DJANGO_DEBUG is off (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# How many reverse proxies in front of the app append to X-Forwarded-For (0: trust none).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 8 * 3600
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # the portal's forms carry the token in a hidden field; no script reads the cookie
CSRF_FAILURE_VIEW = "portal.errors.csrf_failure"
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"

# --- applications ------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clearinghouse.apps.ClearinghouseConfig",
    "accounts.apps.AccountsConfig",
    "generators.apps.GeneratorsConfig",
    "releases.apps.ReleasesConfig",
    "verification.apps.VerificationConfig",
    "portal.apps.PortalConfig",
]

MIDDLEWARE = [
    "clearinghouse.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "clearinghouse.urls"
WSGI_APPLICATION = "clearinghouse.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- database ----------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'clearinghouse.sqlite3'}"
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Writers queue instead of failing with "database is locked".
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_HEALTH_CHECKS"] = True
else:
    raise ImproperlyConfigured(f"DATABASE_URL must be PostgreSQL or SQLite, not {_db['ENGINE']}.")
DATABASES = {"default": _db}

# --- cache (login throttling, DRF throttles) ---------------------------------------
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "ch"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "clearinghouse"}
    )
}

# --- passwords and tokens ----------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 30, minimum=1, maximum=365)
# Failed logins: after this many failures in the window, the username (or address) is locked out.
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1)
# Identical refusals from one source within this many seconds are audited once in full and then
# counted; the count becomes one ``api.refusals_repeated`` event when the window closes (0: every
# refusal is audited in full). See clearinghouse/services/refusals.py.
AUDIT_REFUSAL_WINDOW_SECONDS = env_int("AUDIT_REFUSAL_WINDOW_SECONDS", 60, minimum=0, maximum=3600)

# --- uploads -----------------------------------------------------------------------
# Largest real-data CSV accepted; bigger uploads are refused while streaming (413). 1 GiB: a 1M-row ×
# 30-column CSV is 130-300 MB. The upload is spooled to UPLOAD_TEMP_DIR, then parsed and checked in
# chunks (clearinghouse.tabular.CHUNK_ROWS): memory grows with its rows (the typed table, ~150 bytes a row
# at 30 columns), not with the file: 1M × 30 (104 MB) peaked at 0.93 GiB, 0.44 GiB of it the process's
# Django and pandas (make bench-scale).
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 1024 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_HANDLERS = [
    "clearinghouse.api.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = str(UPLOAD_TEMP_DIR)
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# Reports of the first N failing cells when an upload is refused.
UPLOAD_MAX_REPORTED_FAILURES = 20

# --- REST API ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser with a nesting limit (clearinghouse.api.parsers.MAX_JSON_DEPTH): 400, never a RecursionError.
    "DEFAULT_PARSER_CLASSES": ["clearinghouse.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "clearinghouse.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "clearinghouse.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "clearinghouse.api.schema.AutoSchema",
    # Throttles are a cost control, not a security boundary (the privacy budget is a ledger).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("THROTTLE_ANON", "120/min"),
        "user": env_str("THROTTLE_USER", "1200/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Clinical data clearing-house API",
    "DESCRIPTION": (
        "Real cohorts are held privately; synthetic cohorts are published; hypotheses are "
        "verified on the real data with differential privacy. Authenticate with "
        "`Authorization: Bearer <token>` from `POST /api/v1/auth/token/`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery --------------------------------------------------------------------------
# Without a broker, tasks run in-process at commit time (no external service needed).
# ``filesystem://`` is the embedded broker `manage.py serve` (`make serve`) uses: kombu's
# filesystem transport, one file per message under DATA_DIR/broker/ (no server, no extra
# package; see docs/architecture.md). Redis or RabbitMQ URLs are used as given.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
EMBEDDED_BROKER_URL = "filesystem://"
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL is not None and CELERY_BROKER_URL.split("://", 1)[0] == "filesystem":
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True, mode=0o700)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Producers write and the worker reads the same folder; processed messages are deleted.
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),  # broadcast (ping, inspect) and exchange tables
        "store_processed": False,
        # How often an idle worker lists the folder: the upper bound on a job's start latency.
        "polling_interval": env_float("CELERY_EMBEDDED_POLL_SECONDS", 0.1, minimum=0.01),
    }
    CELERY_BEAT_SCHEDULE_FILENAME = str(BROKER_DIR / "celerybeat-schedule")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the database, not in a result backend
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600, minimum=60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 6 * 3600 - 60, minimum=30)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "audit-chain-verify": {
        "task": "clearinghouse.audit_chain_verify",
        "schedule": env_int("AUDIT_VERIFY_EVERY_SECONDS", 3600, minimum=60),
    },
    "audit-refusals-flush": {
        "task": "clearinghouse.audit_refusals_flush",
        "schedule": 60,
    },
    "generator-runs-reap": {
        "task": "generators.reap_stale_runs",
        "schedule": 60,
    },
    "verifications-reap": {
        "task": "verification.reap_stale",
        "schedule": 60,
    },
    "release-reports-reap": {
        "task": "releases.reap_stale_reports",
        "schedule": 60,
    },
}

# --- generators and releases -----------------------------------------------------------
# A training run may take at most this long: at this soft limit the run is failed with a
# message; the task's hard limit (the process is killed) comes a minute later.
GENERATOR_TIME_LIMIT_SECONDS = env_int("GENERATOR_TIME_LIMIT_SECONDS", 4 * 3600, minimum=120)
GENERATOR_MAX_EPOCHS = env_int("GENERATOR_MAX_EPOCHS", 5000, minimum=1)
# A running run whose worker has not reported for this long is failed (worker killed or lost).
GENERATOR_STALE_AFTER_SECONDS = env_int("GENERATOR_STALE_AFTER_SECONDS", 900, minimum=60)
RELEASE_MAX_ROWS = env_int("RELEASE_MAX_ROWS", 1_000_000, minimum=1)
# --- verification (differential privacy) ---------------------------------------------
# Defaults of each dataset's budget policy (a custodian changes them per dataset): the ε all
# researchers together may spend, each researcher's allocation, the most one hypothesis may ask
# for, and the smallest noisy subgroup an answer is given for.
VERIFICATION_DATASET_CAP = env_float("VERIFICATION_DATASET_CAP", 20.0, minimum=0.0)
VERIFICATION_DEFAULT_ALLOCATION = env_float("VERIFICATION_DEFAULT_ALLOCATION", 2.0, minimum=0.0)
VERIFICATION_MAX_EPSILON = env_float("VERIFICATION_MAX_EPSILON", 1.0, minimum=0.000001)
VERIFICATION_MIN_SUBGROUP = env_int("VERIFICATION_MIN_SUBGROUP", 20, minimum=1)
# A verification still computing after this long lost its process: beat fails it and refunds its ε.
VERIFICATION_STALE_AFTER_SECONDS = env_int("VERIFICATION_STALE_AFTER_SECONDS", 600, minimum=30)

# A release's validation report (and a sweep's, per release) is stopped after this long.
REPORT_TIME_LIMIT_SECONDS = env_int("REPORT_TIME_LIMIT_SECONDS", 1800, minimum=60)

# --- static files, i18n ------------------------------------------------------------
STATIC_URL = "static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
