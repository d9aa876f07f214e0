"""Settings for the IIT ML Service: one module, every value from the environment.

Nothing set means the embedded default: SQLite, a local-memory cache and a
filesystem Celery broker, so the service runs on a laptop with no servers.
``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` switches the cache and
Celery to Redis.  ``IIT_ENV=production`` refuses to start without a real
SECRET_KEY and ALLOWED_HOSTS and turns on the deploy-time protections.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from iit_service.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)
from monitoring.observability.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("IIT_VAR_DIR", str(BASE_DIR / "var")))

IIT_ENV = env_choice("IIT_ENV", "development", ("development", "production", "test"))
PRODUCTION = IIT_ENV == "production"
DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when IIT_ENV=production")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when IIT_ENV=production")
    SECRET_KEY = "dev-only-insecure-key-never-used-in-production"  # noqa: S105
elif PRODUCTION and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters in production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when IIT_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django_prometheus",
    # django.contrib.admin, with the monitoring console's pages on the default site.
    "monitoring.apps.MonitoringAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "csp",
    "dbbackup",
    "axes",
    "patients",
    "predictions",
    "monitoring",
]

MIDDLEWARE = [
    "monitoring.observability.middleware.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "monitoring.observability.middleware.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (django-csp; CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Serves the admin's and Swagger UI's static files under gunicorn (no separate web server needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Sees view exceptions first (process_exception runs bottom-up): a lost database is a 503, not a 500.
    "iit_service.api.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: turns a login lockout into a 429 in the one error shape.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "iit_service.urls"
WSGI_APPLICATION = "iit_service.wsgi.application"

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

# --- Database -------------------------------------------------------------
DB_APPLICATION_NAME = env_str("DB_APPLICATION_NAME", "iit-ml-service")
# The most connections this service may hold (per host); /health/db reports it as the pool total.
DB_POOL_MAX = env_int("DB_POOL_MAX", 10, minimum=1)
# The hot statements of a request are planned once a session (iit_service.db.execute_prepared). Switch off
# behind a pooler that shares sessions between clients (PgBouncer in transaction mode).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
# Fail fast on a database that does not answer (docs/RUNBOOK.md, "Database hung"). Every process: libpq gives
# up connecting after DB_CONNECT_TIMEOUT s; the server ends any statement after DB_STATEMENT_TIMEOUT s (0 = no
# limit). Web requests (gunicorn workers): each connect or statement waits at most DB_WEB_WAIT_TIMEOUT s for the
# server's answer, kept by the client (iit_service.db_wait), so a frozen server is a 503, never a hung worker.
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 2, minimum=1)
DB_STATEMENT_TIMEOUT = env_float("DB_STATEMENT_TIMEOUT", 0, minimum=0)
DB_WEB_WAIT_TIMEOUT = env_float("DB_WEB_WAIT_TIMEOUT", 1.2, minimum=0)
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", "sqlite:///db.sqlite3"),
        base_dir=BASE_DIR,
        app_name=DB_APPLICATION_NAME,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        connect_timeout=DB_CONNECT_TIMEOUT,
        statement_timeout=DB_STATEMENT_TIMEOUT,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CACHE_TIMEOUT = env_int("CACHE_TIMEOUT", 3600, minimum=1)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "TIMEOUT": CACHE_TIMEOUT,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "iit"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": env_float("REDIS_CONNECT_TIMEOUT", 1.0),
                "SOCKET_TIMEOUT": env_float("REDIS_SOCKET_TIMEOUT", 1.0),
                # A Redis outage must degrade to the database path, never fail a request.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "iit.error"
else:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache",
            "LOCATION": "iit-default",
            "TIMEOUT": CACHE_TIMEOUT,
        }
    }

# --- Auth -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Login lockout (django-axes): after AXES_FAILURE_LIMIT failed logins of one username from one
# address, the admin login and the API token endpoint answer 429 until AXES_COOLOFF_HOURS pass.
# Attempts are kept in the database, so every gunicorn worker sees the same count.
AUTHENTICATION_BACKENDS = [
    "iit_service.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_HOURS", 1.0, minimum=0.01)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "iit_service.lockout.lockout_response"
# The lockout counts failures per address as the audit log and the throttles see it (TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "iit_service.api.caller.client_address"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))

# Bulk ingest takes up to 10,000 observations (~2 MB); anything far larger is refused with 413/400.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 8 * 1024 * 1024, minimum=1024)
BULK_MAX_OBSERVATIONS = env_int("BULK_MAX_OBSERVATIONS", 10_000, minimum=1)

# --- REST API -------------------------------------------------------------
# How many reverse proxies in front of the service append to X-Forwarded-For. 0: the header is ignored
# and the caller is the socket peer; N: the caller is the N-th address from the right. Any client can
# write the header, so a number larger than the real chain of proxies lets callers choose their address.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "iit_service.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "iit_service.api.pagination.Pagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_FILTER_BACKENDS": ["iit_service.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "iit_service.api.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "iit_service.api.negotiation.ContentNegotiation",
    "DEFAULT_THROTTLE_CLASSES": [
        "iit_service.api.throttling.UserWindowThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "6000/min"),
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "login": env_str("API_THROTTLE_LOGIN", "10/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # No OPTIONS introspection: the viewsets have no serializer_class (input and output serializers
    # differ), so DRF's metadata crashed with a 500. OPTIONS is answered 405; the schema is /api/schema/.
    "DEFAULT_METADATA_CLASS": None,
    # The throttles' client address; iit_service.api.caller.client_address picks the same one.
    "NUM_PROXIES": TRUSTED_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "IIT ML Service API",
    "DESCRIPTION": "Interruption-in-treatment risk for HIV treatment programmes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # The machines are offline: serve Swagger UI from the installed sidecar, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status"; name the patient one rather than let drf-spectacular number it.
    "ENUM_NAME_OVERRIDES": {"PatientStatusEnum": "patients.models.Patient.Status"},
}

# --- Celery ---------------------------------------------------------------
# Without Redis the broker is kombu's filesystem transport: a real Celery
# broker that needs no server, so the embedded default runs worker and beat too.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {}
    if CELERY_BROKER_URL != "filesystem://"
    else {
        "data_folder_in": str(VAR_DIR / "celery" / "broker"),
        "data_folder_out": str(VAR_DIR / "celery" / "broker"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or f"file://{VAR_DIR / 'celery' / 'results'}")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat writes each schedule's last run time after every task it sends (not every 3 minutes): /health reads it.
CELERY_BEAT_SYNC_EVERY = 1
CELERY_WORKER_SEND_TASK_EVENTS = True
# Keep the LOGGING config (JSON lines with categories) in workers instead of Celery's plain format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Model ----------------------------------------------------------------
MODEL_DIR = Path(env_str("MODEL_DIR", str(VAR_DIR / "models")))
PREDICTION_CACHE_TIMEOUT = env_int("PREDICTION_CACHE_TIMEOUT", 24 * 3600, minimum=1)
MODEL_VERSION_CHECK_SECONDS = env_float("MODEL_VERSION_CHECK_SECONDS", 5.0, minimum=0)
# Patients per batch-scoring task: each chunk is one Celery task and one transaction.
PREDICTION_BATCH_CHUNK_SIZE = env_int("PREDICTION_BATCH_CHUNK_SIZE", 5000, minimum=1)
# A facility with fewer at-risk patients at training takes the version's global tier cut-offs.
TIER_MIN_FACILITY_PATIENTS = env_int("TIER_MIN_FACILITY_PATIENTS", 200, minimum=1)
# A running batch job none of whose chunks was stored for this long lost them (a killed worker, a broker
# outage): the hourly rescan job requeues its unscored patients once, and fails it if it stalls again.
BATCH_STALL_MINUTES = env_int("BATCH_STALL_MINUTES", 30, minimum=1)

# --- Monitoring -----------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_BASIC_AUTH = env_str("METRICS_BASIC_AUTH")  # "user:password"
METRICS_REQUIRE_AUTH = env_bool("METRICS_REQUIRE_AUTH", PRODUCTION)
if PRODUCTION and METRICS_REQUIRE_AUTH and not (METRICS_TOKEN or METRICS_BASIC_AUTH):
    raise ImproperlyConfigured("METRICS_TOKEN or METRICS_BASIC_AUTH is required to protect /metrics in production")
HEALTH_PROBE_TIMEOUT = env_float("HEALTH_PROBE_TIMEOUT", 1.5, minimum=0.1)
# /health pings the Celery workers (answer cached for HEALTH_CELERY_CACHE_SECONDS) and reads beat's last tick:
# degraded when no worker answers or beat's newest run is older than HEALTH_BEAT_STALE_SECONDS (more than the
# shortest enabled schedule, 30 s for `system`). Off where no worker is meant to run beside the web.
HEALTH_CELERY = env_bool("HEALTH_CELERY", True)
HEALTH_CELERY_PING_TIMEOUT = env_float("HEALTH_CELERY_PING_TIMEOUT", 1.0, minimum=0.05)
HEALTH_CELERY_CACHE_SECONDS = env_int("HEALTH_CELERY_CACHE_SECONDS", 30, minimum=1)
HEALTH_BEAT_STALE_SECONDS = env_int("HEALTH_BEAT_STALE_SECONDS", 180, minimum=30)
SLOW_REQUEST_SECONDS = env_float("SLOW_REQUEST_SECONDS", 1.0, minimum=0)
SLOW_QUERY_SECONDS = env_float("SLOW_QUERY_SECONDS", 0.5, minimum=0)
SLOW_PREDICTION_SECONDS = env_float("SLOW_PREDICTION_SECONDS", 1.0, minimum=0)
# Celery worker processes serve their metrics here for Prometheus (0 = off) (monitoring.observability.worker_metrics),
# behind the same credential as /metrics. Local only unless set: docker compose listens on 0.0.0.0 for Prometheus.
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 9808, minimum=0)
CELERY_METRICS_ADDR = env_str("CELERY_METRICS_ADDR", "127.0.0.1")
LOG_DIR = Path(env_str("LOG_DIR", str(VAR_DIR / "log")))
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
APP_LOG_RETENTION_DAYS = env_int("APP_LOG_RETENTION_DAYS", 30, minimum=1)
AUDIT_LOG_RETENTION_DAYS = env_int("AUDIT_LOG_RETENTION_DAYS", 90, minimum=1)
# JSON lines to stdout and to LOG_DIR/<category>.log, rotated daily (monitoring/observability/logging.py).
# LOG_CONSOLE=false keeps stdout quiet (files only): `make run` sets it so the terminal shows its own messages.
LOG_CONSOLE = env_bool("LOG_CONSOLE", True)
LOGGING = logging_config(
    log_dir=LOG_DIR,
    level=LOG_LEVEL,
    app_retention_days=APP_LOG_RETENTION_DAYS,
    audit_retention_days=AUDIT_LOG_RETENTION_DAYS,
    console=LOG_CONSOLE,
)
# Scheduled evaluation (monitoring.evaluation.jobs): AUC over resolved predictions, drift over recent ones.
MONITORING_AUC_WINDOW_DAYS = env_int("MONITORING_AUC_WINDOW_DAYS", 28, minimum=1)
MONITORING_AUC_MIN_EVENTS = env_int("MONITORING_AUC_MIN_EVENTS", 50, minimum=2)
MONITORING_AUC_SEGMENT_MIN_EVENTS = env_int("MONITORING_AUC_SEGMENT_MIN_EVENTS", 20, minimum=2)
MONITORING_DRIFT_MIN_ROWS = env_int("MONITORING_DRIFT_MIN_ROWS", 500, minimum=1)
# The monthly retrain job (monitoring.evaluation.challenger) trains a candidate and compares it with the active
# version; the drift job also enqueues it once drift has been declared on RETRAIN_DRIFT_SNAPSHOTS snapshots in
# a row. The candidate waits for staff's Promote or Dismiss unless RETRAIN_AUTO_PROMOTE sends it through the
# activation gate at once.
RETRAIN_AUTO_PROMOTE = env_bool("RETRAIN_AUTO_PROMOTE", False)
RETRAIN_DRIFT_SNAPSHOTS = env_int("RETRAIN_DRIFT_SNAPSHOTS", 3, minimum=1)
# Rates and P95s of the system job are over this trailing window (PromQL's rate(...[5m])).
MONITORING_RATE_WINDOW_SECONDS = env_int("MONITORING_RATE_WINDOW_SECONDS", 300, minimum=30)
# The system job sums the service's counters from these prometheus multiprocess directories
# (web and worker; shared volumes in Docker) - those that exist - plus its own PROMETHEUS_MULTIPROC_DIR.
MONITORING_COUNTER_DIRS = env_list(
    "MONITORING_COUNTER_DIRS", [str(VAR_DIR / "prometheus" / "web"), str(VAR_DIR / "prometheus" / "worker")]
)
METRIC_SAMPLE_RETENTION_DAYS = env_int("METRIC_SAMPLE_RETENTION_DAYS", 90, minimum=1)
OPS_EMAILS = env_list("OPS_EMAILS")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "iit-ml-service@localhost")
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL")
PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY")
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL")
# Alerting: a metric sample older than this no longer counts as the current value.
ALERT_SAMPLE_MAX_AGE_SECONDS = env_int("ALERT_SAMPLE_MAX_AGE_SECONDS", 300, minimum=1)
NOTIFY_HTTP_TIMEOUT = env_float("NOTIFY_HTTP_TIMEOUT", 5.0, minimum=0.1)
NOTIFY_MAX_RETRIES = env_int("NOTIFY_MAX_RETRIES", 5, minimum=0)
NOTIFY_RETRY_BASE_SECONDS = env_float("NOTIFY_RETRY_BASE_SECONDS", 30.0, minimum=0)
# Base URL of the service for links in notifications and reports (admin console, runbook).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Where docs/RUNBOOK.md is browsable (e.g. https://git.example.org/iit/-/blob/main): alert runbook
# paths are sent to Slack, PagerDuty and email as links under it; empty leaves them repository paths.
RUNBOOK_BASE_URL = env_str("RUNBOOK_BASE_URL").rstrip("/")
HEALTH_REPORT_PERIOD_HOURS = env_int("HEALTH_REPORT_PERIOD_HOURS", 24, minimum=1)

# --- Content-Security-Policy ----------------------------------------------
# Scripts only from this origin, none inline: the admin, the console and Swagger UI (drf-spectacular's split
# view loads its start-up script as a file; the sidecar serves the bundle) need nothing else. Styles may be
# inline: the console's and Swagger UI's pages carry a <style> block, and a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Backups --------------------------------------------------------------
# The backup job (monitoring.backups) dumps the database with django-dbbackup to BACKUP_DIR, or to
# an S3 bucket through django-storages when BACKUP_S3_BUCKET is set; it keeps the newest BACKUP_KEEP.
BACKUP_DIR = Path(env_str("BACKUP_DIR", str(VAR_DIR / "backups")))
BACKUP_KEEP = env_int("BACKUP_KEEP", 14, minimum=1)
BACKUP_S3_BUCKET = env_str("BACKUP_S3_BUCKET")
if BACKUP_S3_BUCKET:
    BACKUP_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_S3_BUCKET,
            "location": env_str("BACKUP_S3_PREFIX", "iit-ml-service/backups"),
            # Empty: AWS itself; set for MinIO, Ceph or another S3-compatible store.
            "endpoint_url": env_str("BACKUP_S3_ENDPOINT_URL") or None,
            "region_name": env_str("BACKUP_S3_REGION") or None,
            # Empty: boto3's own chain (instance role, AWS_* variables, ~/.aws).
            "access_key": env_str("BACKUP_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("BACKUP_S3_SECRET_ACCESS_KEY") or None,
            "default_acl": "private",
            "file_overwrite": False,
        },
    }
else:
    BACKUP_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BACKUP_DIR), "file_permissions_mode": 0o600, "directory_permissions_mode": 0o700},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "dbbackup": BACKUP_STORAGE,
}
DBBACKUP_CLEANUP_KEEP = BACKUP_KEEP
# The job records and alerts on failures itself; dbbackup's own commands should not email ADMINS.
DBBACKUP_SEND_EMAIL = False
# One name for every host, so the newest backup is found whichever replica's worker made it.
DBBACKUP_HOSTNAME = env_str("BACKUP_SERVER_NAME", "iit-ml-service")

# --- Production hardening -------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
