"""The append-only, hash-chained archive of what Tarif transmitted (issue 18 item 8).

Each record keeps a document, a status or a report as it left Tarif (its bytes), their
sha256, and `record_hash = HMAC-SHA256(key, previous_hash, sequence, kind, reference, brand,
livemode, content_sha256, metadata, archived_at)` with the integrity key of invoices/chain.py,
chained per mode through `ArchiveHead`. Rows are never updated or deleted: the service only
inserts, and on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0001).
`manage.py verify_archive` walks the chain; docs/archive.md.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ArchiveHead(models.Model):
    """The last link of one mode's chain: locked by every append, so sequences have no gap."""

    livemode = models.BooleanField(_("live mode"), unique=True)
    last_sequence = models.PositiveBigIntegerField(_("last sequence"), default=0)
    last_hash = models.CharField(_("last record hash"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("archive chain head")
        verbose_name_plural = _("archive chain heads")

    def __str__(self) -> str:
        return f"{'live' if self.livemode else 'test'} #{self.last_sequence}"


class ArchiveRecord(models.Model):
    class Kind(models.TextChoices):
        DOCUMENT = "document", _("transmitted document")
        STATUS = "status", _("lifecycle status")
        EREPORT = "ereport", _("e-reporting flow")

    livemode = models.BooleanField(_("live mode"))
    sequence = models.PositiveBigIntegerField(_("sequence"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    reference = models.CharField(_("reference"), max_length=200)
    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="archive_records", verbose_name=_("brand")
    )
    content = models.BinaryField(_("content"))
    content_sha256 = models.CharField(_("content sha256"), max_length=64)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    archived_at = models.DateTimeField(_("archived"))
    retain_until = models.DateField(_("kept until"))
    previous_hash = models.CharField(_("previous record hash"), max_length=64, blank=True)
    record_hash = models.CharField(_("record hash"), max_length=64)

    class Meta:
        verbose_name = _("archive record")
        verbose_name_plural = _("archive records")
        ordering = ["livemode", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["livemode", "sequence"], name="archive_record_unique_sequence"),
        ]
        indexes = [models.Index(fields=["kind", "reference"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} {self.reference}"
