"""Integrator API keys and idempotency records (the framework side of /api/v1/, see config/api/)."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

KEY_PREFIX_LENGTH = 12


def api_key_hash(raw: str) -> str:
    # Keys carry 256 bits of randomness: a plain SHA-256 is enough (no stretching needed)
    # and lets every request find its key with one indexed lookup.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", _("read only")
        READ_WRITE = "read_write", _("read and write")

    class Mode(models.TextChoices):
        LIVE = "live", _("live")
        TEST = "test", _("sandbox (test clocks)")

    name = models.CharField(_("name"), max_length=100, help_text=_("What the key is for, e.g. the integration's name."))
    prefix = models.CharField(_("prefix"), max_length=KEY_PREFIX_LENGTH, editable=False, db_index=True)
    hashed_key = models.CharField(_("hashed key"), max_length=64, unique=True, editable=False)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.READ)
    mode = models.CharField(_("mode"), max_length=4, choices=Mode.choices, default=Mode.LIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE

    @classmethod
    def generate(cls, *, mode: str) -> str:
        """A new secret: `tk_live_…` or `tk_test_…`. Only its hash and its prefix are stored."""
        return f"tk_{mode}_{secrets.token_urlsafe(32)}"

    def set_secret(self, raw: str) -> None:
        self.prefix = raw[:KEY_PREFIX_LENGTH]
        self.hashed_key = api_key_hash(raw)

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an `Idempotency-Key`, replayed for 24 hours."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", _("in progress")
        DONE = "done", _("done")

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(_("idempotency key"), max_length=255)
    request_hash = models.CharField(_("request hash"), max_length=64)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_content_type = models.CharField(_("response content type"), max_length=100, blank=True)
    response_body = models.BinaryField(_("response body"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique_key_per_api_key")]

    def __str__(self) -> str:
        return self.key
