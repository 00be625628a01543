"""Settings shared by every environment. Everything variable comes from config.env."""

from __future__ import annotations

from datetime import timedelta

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.translation import gettext_lazy as _

from config.env import BASE_DIR, dev_encryption_key, env

SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-tarif-embedded-default-do-not-use-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
TARIF_BASE_URL = env.str("TARIF_BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    # django-modeltranslation (issue 17): brand texts per language; it must come before the admin app.
    "modeltranslation",
    # django-unfold (issue 15) restyles the Django admin; it must come before the admin app.
    "unfold.apps.BasicAppConfig",  # the basic config: our TarifAdminSite stays admin.site
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.import_export",
    "config.apps.TarifAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_email",
    "allauth",
    "allauth.account",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_celery_beat",
    "django_countries",
    "django_htmx",
    "djstripe",
    "config.apps.ConfigConfig",
    "config.events",
    "customers",
    "billing",
    "billing.entitlements",
    "billing.wallets",
    "billing.checkout",
    "billing.storefront",
    "billing.quotes",
    "invoices.einvoicing",
    "invoices.ereporting",
    "invoices.archive",
    "invoices",
    "invoices.ledger",
    "reports",
    "feedback",
]

MIDDLEWARE = [
    # First: its Server-Timing header on API responses counts every other middleware (issue 16).
    "config.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /api/v1/ requests leave here for their own lane: TARIF_BROWSER_ONLY_MIDDLEWARE below is
    # skipped (config/api/lane.py).
    "config.api.lane.ApiLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    # After CSPMiddleware so its response hook runs first: the console's Alpine.js needs eval.
    "config.middleware.ConsoleScriptPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "config.api.language.ApiLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # django-axes must come last.
    "axes.middleware.AxesMiddleware",
]

# What an API request (key-authenticated, JSON) never needs: sessions, the language cookie,
# CSRF, the Django user and its OTP device, messages, allauth, htmx, the console's session
# timeout and audit, django-axes' login lockout, static files and the HTML pages' CSP.
TARIF_API_LANE_PREFIX = "/api/v1/"
TARIF_BROWSER_ONLY_MIDDLEWARE = [
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.ConsoleScriptPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.ops.middleware.SessionTimeoutMiddleware",
    "config.audit.middleware.AdminAuditMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts: SQLite's stand-in for
    # select_for_update, so concurrent finalizations serialize instead of failing late.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The application connects as a role that owns nothing (DATABASE_URL); migrations run as
# the tables' owner (DATABASE_MIGRATE_URL, the `migrator` alias `manage.py migrate` picks).
# See `manage.py db_roles` and docs/security.md.
if env.str("DATABASE_MIGRATE_URL", default=""):
    DATABASES["migrator"] = {**env.db("DATABASE_MIGRATE_URL"), "TEST": {"MIRROR": "default"}}
# Issue 20 (docs/scaling.md): behind PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer) a
# connection has no session of its own: no server-side cursors and no prepared statements
# (psycopg 3 prepares a statement run 5 times unless prepare_threshold is None).
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "pgbouncer"):
    raise ImproperlyConfigured("DATABASE_POOLER is empty or pgbouncer")
if DATABASE_POOLER == "pgbouncer" and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
# Issue 20: reports, exports and the API's GET lists read from a streaming replica when one is
# configured and not too far behind (config/db_routers.py); everything else stays on the primary.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {
        **env.db("DATABASE_REPLICA_URL"),
        "CONN_MAX_AGE": DATABASES["default"].get("CONN_MAX_AGE", 0),
        "CONN_HEALTH_CHECKS": True,
        # Tests read the test database's copy on the replica; nothing is created there.
        "TEST": {"MIRROR": "default"},
    }
    if DATABASES["replica"]["ENGINE"] == "django.db.backends.postgresql":
        # Read-only sessions (a hot standby refuses writes anyway), and a short connect timeout
        # so a dead replica costs the lag guard seconds, not minutes.
        _replica_options = DATABASES["replica"].setdefault("OPTIONS", {})
        _replica_options.setdefault("connect_timeout", 2)
        if DATABASE_POOLER == "pgbouncer":  # PgBouncer refuses the `options` startup parameter
            DATABASES["replica"]["DISABLE_SERVER_SIDE_CURSORS"] = True
            _replica_options["prepare_threshold"] = None
        else:
            _replica_options["options"] = (
                f"{_replica_options.get('options', '')} -c default_transaction_read_only=on".strip()
            )
# Behind a transaction-mode pooler, the billing run's scope lock (a session advisory lock held
# across transactions, billing/locks.py) needs a connection with a session: PostgreSQL directly,
# or a pooler database in session mode. Without it the lock is not taken (as on SQLite).
if env.str("DATABASE_SESSION_URL", default=""):
    DATABASES["session"] = {**env.db("DATABASE_SESSION_URL"), "CONN_MAX_AGE": 0, "TEST": {"MIRROR": "default"}}
# Django's PostgreSQL backend, with a bypass window for its health check (config/db/postgresql/base.py:
# a connection that served a request without error less than this many seconds ago is not checked
# again; 0 checks before every request).
TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = env.float("TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS", default=0.5)
POSTGRESQL_ENGINES = ("django.db.backends.postgresql", "config.db.postgresql")
for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.postgresql":
        _database["ENGINE"] = "config.db.postgresql"
DATABASE_ROUTERS = ["config.db_routers.ReplicaRouter"]
TARIF_REPLICA_ENABLED = env.bool("TARIF_REPLICA_ENABLED", default=True)
TARIF_REPLICA_MAX_LAG_SECONDS = env.float("TARIF_REPLICA_MAX_LAG_SECONDS", default=10.0)
TARIF_REPLICA_CHECK_SECONDS = env.float("TARIF_REPLICA_CHECK_SECONDS", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://tarif")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes must come first so a locked-out login never reaches the others.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "config" / "locale"]
# English dates day first with a 24-hour clock (config/formats/en); French keeps Django's.
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
TARIF_DEFAULT_TIMEZONE = env.str("TARIF_DEFAULT_TIMEZONE", default="Europe/Paris")
# Reports cut months at midnight in this zone (docs/reports.md).
TARIF_REPORTS_TIMEZONE = env.str("TARIF_REPORTS_TIMEZONE", default=TARIF_DEFAULT_TIMEZONE)

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Email: console by default; EMAIL_URL=smtp://user:pass@host:587/?tls=True for real delivery.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
for _key in ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
    if _key in _email:
        globals()[_key] = _email[_key]
if "EMAIL_FILE_PATH" in _email:
    EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tarif <billing@tarif.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Sessions: absolute lifetime; the portal adds an inactivity timeout of its own.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        # The Django admin still writes a few style="" attributes.
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# Staff: password + TOTP (django-otp). Customers: django-allauth (see customers/).
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:home"
OTP_TOTP_ISSUER = "Tarif"
# One second-factor rule for the console and the portal (config/mfa.py): django-otp's throttle
# with one factor on every kind of device (after n wrong codes, every code waits factor x 2^(n-1) s),
# and one freshness window for sensitive actions (refunds, write-offs, bank details, portal step-up).
# The freshness window once had two names; a deployment that set either keeps its value.
TARIF_MFA_THROTTLE_FACTOR = env.int("TARIF_MFA_THROTTLE_FACTOR", default=1)
OTP_TOTP_THROTTLE_FACTOR = TARIF_MFA_THROTTLE_FACTOR
OTP_STATIC_THROTTLE_FACTOR = TARIF_MFA_THROTTLE_FACTOR
OTP_EMAIL_THROTTLE_FACTOR = TARIF_MFA_THROTTLE_FACTOR
TARIF_MFA_FRESH_MINUTES = env.int(
    "TARIF_MFA_FRESH_MINUTES",
    default=env.int("TARIF_REFUND_OTP_MAX_AGE_MINUTES", default=env.int("TARIF_PORTAL_STEP_UP_MINUTES", default=5)),
)

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_CALLABLE = "config.auth.axes_username"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_ADAPTER = "customers.adapters.PortalAccountAdapter"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if TARIF_BASE_URL.startswith("https") else "http"
TARIF_OPEN_SIGNUP = env.bool("TARIF_OPEN_SIGNUP", default=False)
# Issue 17 (portal): no enumeration (a reset or a code request for an unknown address gets the
# same answer), allauth's own rate limits next to django-axes, and passwordless sign-in by an
# emailed one-time code (allauth's login by code; its URLs exist only when it is on).
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = env.bool("TARIF_PORTAL_LOGIN_BY_CODE", default=True)
ACCOUNT_LOGIN_BY_CODE_TIMEOUT = env.int("TARIF_PORTAL_LOGIN_CODE_SECONDS", default=300)
ACCOUNT_RATE_LIMITS = {
    "login": env.str("TARIF_RATELIMIT_LOGIN", default="30/m/ip"),
    "login_failed": env.str("TARIF_RATELIMIT_LOGIN_FAILED", default="10/m/ip,5/300s/key"),
    "reset_password": env.str("TARIF_RATELIMIT_RESET_PASSWORD", default="20/m/ip,5/m/key"),
    "reset_password_from_key": env.str("TARIF_RATELIMIT_RESET_PASSWORD_FROM_KEY", default="20/m/ip"),
    "request_login_code": env.str("TARIF_RATELIMIT_REQUEST_LOGIN_CODE", default="20/m/ip,3/m/key"),
    "confirm_email": "1/180s/key",
}
TARIF_BILLING_CHUNK_SIZE = env.int("TARIF_BILLING_CHUNK_SIZE", default=500)
# Issue 16 (docs/billing.md "Proration credit basis", "Several discounts"):
# how unused time is credited when a subscription does not say ("classic" or "flexible"),
# and how several discounts of one invoice combine ("sequential": each on what the previous
# left, Lago; "independent": each on the undiscounted amounts, capped).
TARIF_PRORATION_CREDIT_BASIS = env.str("TARIF_PRORATION_CREDIT_BASIS", default="classic")
if TARIF_PRORATION_CREDIT_BASIS not in ("classic", "flexible"):
    raise ValueError("TARIF_PRORATION_CREDIT_BASIS must be classic or flexible")
TARIF_DISCOUNT_STACKING = env.str("TARIF_DISCOUNT_STACKING", default="sequential")
if TARIF_DISCOUNT_STACKING not in ("sequential", "independent"):
    raise ValueError("TARIF_DISCOUNT_STACKING must be sequential or independent")

# Prepaid credits (issue 16, docs/billing.md "Prepaid credits"): what a credit can pay of an eligible
# line: `after_tax` (Lago: the line with its VAT) or `before_tax` (Stripe: the line's amount excluding tax).
TARIF_WALLET_APPLIES = env.str("TARIF_WALLET_APPLIES", default="after_tax")
if TARIF_WALLET_APPLIES not in ("after_tax", "before_tax"):
    raise ImproperlyConfigured("TARIF_WALLET_APPLIES is after_tax or before_tax")
# A running billing run without progress for this long is marked interrupted (stale-run sweeper).
TARIF_BILLING_RUN_STALE_MINUTES = env.int("TARIF_BILLING_RUN_STALE_MINUTES", default=15)
# Subscription updates and lifecycle events (issue 16, docs/billing.md "Subscription updates"):
# `customer.subscription.trial_will_end` this many days before a trial ends (Stripe: 3),
# `invoice.upcoming` this many days before a renewal (Stripe's default: 7), and how long a
# pending update (payment_behavior=pending_if_incomplete) waits for its invoice (Stripe: 23 h).
TARIF_TRIAL_WILL_END_DAYS = env.int("TARIF_TRIAL_WILL_END_DAYS", default=3)
TARIF_INVOICE_UPCOMING_DAYS = env.int("TARIF_INVOICE_UPCOMING_DAYS", default=7)
TARIF_PENDING_UPDATE_EXPIRY_HOURS = env.int("TARIF_PENDING_UPDATE_EXPIRY_HOURS", default=23)
# Issue 16, cycles: a subscription created with an anchor (a date or a rule) bills the time up
# to its first billing date at once, prorated ("create_prorations", Stripe's default), or
# gives it free ("none"); `proration_behavior` on the creation overrides this.
TARIF_ANCHOR_FIRST_PERIOD = env.str("TARIF_ANCHOR_FIRST_PERIOD", default="create_prorations")
# Issue 17, pricing tables and payment links (docs/pricing-tables.md): POSTs per IP that may start a
# checkout from the public pages (django-ratelimit's "count/period"), and the sites allowed to frame
# every pricing table's embed (each table adds its own list).
TARIF_RATELIMIT_STOREFRONT = env.str("TARIF_RATELIMIT_STOREFRONT", default="20/m")
TARIF_PRICING_EMBED_ORIGINS = env.list("TARIF_PRICING_EMBED_ORIGINS", default=[])
# Render each finalized invoice's PDF (Factur-X) in a Celery task after commit.
TARIF_RENDER_DOCUMENTS = env.bool("TARIF_RENDER_DOCUMENTS", default=True)
# Number order is date order (invoices/services/numbering.py): a caller's issue time read
# before the sequence lock may be overtaken by this much; older is a backdate, refused.
TARIF_ISSUE_CLOCK_TOLERANCE_SECONDS = env.int("TARIF_ISSUE_CLOCK_TOLERANCE_SECONDS", default=300)
# Key of the hash chain of issued documents (invoices/chain.py); empty: derived from SECRET_KEY.
TARIF_INTEGRITY_KEY = env.str("TARIF_INTEGRITY_KEY", default="")

# Sensitive fields (IBANs, tax IDs) are encrypted with these Fernet keys: newest first
# encrypts, every listed key decrypts (rotation: prepend a key, run `manage.py reencrypt`).
TARIF_ENCRYPTION_KEYS = env.list("TARIF_ENCRYPTION_KEYS", default=[dev_encryption_key(SECRET_KEY)])

from config.settings.api import *  # noqa: E402,F403

IMPORT_EXPORT_SKIP_ADMIN_LOG = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}


# Importing into the console needs the model's add permission, exporting its view permission
# (django-import-export lets any staff member do both by default).
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
from config.settings.celery import *  # noqa: E402,F403
from config.settings.checkout import *  # noqa: E402,F403
from config.settings.einvoicing import *  # noqa: E402,F403
from config.settings.ereporting import *  # noqa: E402,F403
from config.settings.feedback import *  # noqa: E402,F403
from config.settings.payments import *  # noqa: E402,F403
from config.settings.portal import *  # noqa: E402,F403
from config.settings.quotes import *  # noqa: E402,F403
from config.settings.reliability import *  # noqa: E402,F403
from config.settings.reliability import reliability_extend  # noqa: E402
from config.settings.stripe import *  # noqa: E402,F403
from config.settings.usage import *  # noqa: E402,F403

reliability_extend(installed_apps=INSTALLED_APPS, middleware=MIDDLEWARE, logging=LOGGING)


# The operator console (issue 15): django-unfold's settings; navigation, search, the dashboard
# and the live/test label are computed per request in config/console_nav.py.
UNFOLD = {
    "SITE_TITLE": _("Tarif"),
    "SITE_HEADER": _("Tarif"),
    "SITE_SUBHEADER": _("Operator console"),
    "SITE_SYMBOL": "receipt_long",
    # An icon of our own: without one the browser asks for /favicon.ico, a 404 in the console log.
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda request: static("tarif/admin/favicon.svg")}
    ],
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_LANGUAGES": True,
    "SHOW_BACK_BUTTON": True,
    "ENVIRONMENT": "config.console_nav.environment_callback",
    "DASHBOARD_CALLBACK": "config.console_nav.dashboard_callback",
    "STYLES": [lambda request: static("tarif/admin/console.css")],
    "SCRIPTS": [lambda request: static("tarif/admin/console.js")],
    "COLORS": {
        "primary": {
            "50": "oklch(97.7% .013 236.62)",
            "100": "oklch(95.1% .026 236.824)",
            "200": "oklch(90.1% .058 230.902)",
            "300": "oklch(82.8% .111 230.318)",
            "400": "oklch(74.6% .16 232.661)",
            "500": "oklch(68.5% .169 237.323)",
            "600": "oklch(58.8% .158 241.966)",
            "700": "oklch(50% .134 242.749)",
            "800": "oklch(44.3% .11 240.79)",
            "900": "oklch(39.1% .09 240.876)",
            "950": "oklch(29.3% .066 243.157)",
        },
    },
    "COMMAND": {
        "search_models": False,
        "search_callback": "config.console_nav.search_callback",
    },
    "SIDEBAR": {
        "show_search": True,  # the search box at the top of the sidebar opens the command search
        "command_search": True,
        "show_all_applications": "config.console_nav.is_superuser",
        "navigation": "config.console_nav.navigation",
    },
}

# Brand texts printed on documents in each document language (issue 17, docs/invoices.md
# "Brand texts per language"): django-modeltranslation adds <field>_fr / <field>_en columns.
MODELTRANSLATION_DEFAULT_LANGUAGE = "fr"
MODELTRANSLATION_LANGUAGES = ("fr", "en")
MODELTRANSLATION_FALLBACK_LANGUAGES = ("fr", "en")

# Accounting ledger (issue 19, docs/accounting.md): postings in the money movements' transactions,
# unnumbered (no exclusive lock); entries are numbered at validation (daily task, period close).
TARIF_LEDGER_ENABLED = env.bool("TARIF_LEDGER_ENABLED", default=True)
# The daily validation numbers entries dated up to this many days before today (brand's zone).
TARIF_LEDGER_VALIDATION_LAG_DAYS = env.int("TARIF_LEDGER_VALIDATION_LAG_DAYS", default=2)
TARIF_LEDGER_DEFAULT_CHART = env.str("TARIF_LEDGER_DEFAULT_CHART", default="pcg")
TARIF_LEDGER_FUNCTIONAL_CURRENCY = env.str("TARIF_LEDGER_FUNCTIONAL_CURRENCY", default="EUR")
# Without a rate for a foreign-currency movement: post it with rate 0 (flagged), or refuse it.
TARIF_LEDGER_REQUIRE_RATES = env.bool("TARIF_LEDGER_REQUIRE_RATES", default=False)
TARIF_REVENUE_RECOGNITION = env.str("TARIF_REVENUE_RECOGNITION", default="daily")
if TARIF_REVENUE_RECOGNITION not in ("daily", "monthly"):
    raise ImproperlyConfigured("TARIF_REVENUE_RECOGNITION is daily or monthly")

# Exchange rates for the ledger (issue 19, docs/accounting-exports.md): an ECB-format CSV or XML
# URL `import_exchange_rates` downloads when no --file is given (empty: files only).
TARIF_EXCHANGE_RATES_URL = env.str("TARIF_EXCHANGE_RATES_URL", default="")
