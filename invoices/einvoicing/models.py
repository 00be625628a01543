"""E-invoicing through an approved platform (PA): accounts, transmissions, lifecycle statuses,
directory cache (issue 18, docs/einvoicing.md).

A `Transmission` exists once per issued document (database uniqueness is the exactly-once
guarantee); its `tracking_id` is stable, so the PA deduplicates a retried submission.
Transmission states: queued → submitting → submitted, or → failed (a final refusal by the PA,
or retries exhausted); `TRANSITIONS` lists what the services allow.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.modes import default_livemode
from customers.fields import EncryptedTextField


class LifecycleCode(models.TextChoices):
    """The reform's lifecycle statuses with their numeric codes.

    Source: DGFiP, "Spécifications externes de la facturation électronique" (life-cycle
    chapter, codes 200-213); the four mandatory ones are 200 Déposée, 210 Refusée,
    212 Encaissée and 213 Rejetée (docs/einvoicing.md).
    """

    DEPOSITED = "200", _("Deposited")
    ISSUED = "201", _("Issued by the platform")
    RECEIVED = "202", _("Received by the platform")
    MADE_AVAILABLE = "203", _("Made available")
    TAKEN_IN_CHARGE = "204", _("Taken in charge")
    APPROVED = "205", _("Approved")
    PARTIALLY_APPROVED = "206", _("Partially approved")
    DISPUTED = "207", _("Disputed")
    SUSPENDED = "208", _("Suspended")
    COMPLETED = "209", _("Completed")
    REFUSED = "210", _("Refused")
    PAYMENT_TRANSMITTED = "211", _("Payment transmitted")
    COLLECTED = "212", _("Collected")
    REJECTED = "213", _("Rejected")


MANDATORY_CODES = frozenset(
    {LifecycleCode.DEPOSITED, LifecycleCode.REFUSED, LifecycleCode.COLLECTED, LifecycleCode.REJECTED}
)
# Statuses that need finance: the buyer refused the invoice, or the platform rejected it.
ATTENTION_CODES = frozenset({LifecycleCode.REFUSED, LifecycleCode.REJECTED})


class PlatformAccount(models.Model):
    """A brand's account at its PA, one per brand and mode."""

    class Kind(models.TextChoices):
        REST = "rest", _("REST API (AFNOR XP Z12-013)")
        SIMULATOR = "simulator", _("Local simulator")

    class Syntax(models.TextChoices):
        FACTURX = "factur-x", _("Factur-X")
        UBL = "ubl", _("UBL 2.1")
        CII = "cii", _("CII D16B")

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="platform_accounts", verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"), default=default_livemode)
    name = models.CharField(_("platform name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.REST)
    base_url = models.URLField(_("API base URL"))
    token_url = models.URLField(_("OAuth2 token URL"), blank=True)
    client_id = models.CharField(_("OAuth2 client id"), max_length=200, blank=True)
    client_secret = EncryptedTextField(_("OAuth2 client secret"), blank=True)
    webhook_secret = EncryptedTextField(_("webhook signing secret"), blank=True)
    default_syntax = models.CharField(
        _("default syntax"), max_length=10, choices=Syntax.choices, default=Syntax.FACTURX
    )
    active = models.BooleanField(_("active"), default=True)
    # Where the last status poll stopped (the PA's opaque cursor).
    poll_cursor = models.CharField(_("poll cursor"), max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("e-invoicing platform account")
        verbose_name_plural = _("e-invoicing platform accounts")
        constraints = [
            models.UniqueConstraint(fields=["brand", "livemode"], name="einvoicing_account_per_brand_mode"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.brand})"


class Transmission(models.Model):
    """One issued document's journey to the PA (exactly one row per document)."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("invoice")
        CREDIT_NOTE = "credit_note", _("credit note")

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        SUBMITTING = "submitting", _("submitting")
        SUBMITTED = "submitted", _("submitted")
        FAILED = "failed", _("failed")

    TRANSITIONS: dict[str, frozenset[str]] = {
        State.QUEUED: frozenset({State.SUBMITTING}),
        # Back to queued when the PA is unavailable (retry with backoff), or a stuck submission.
        State.SUBMITTING: frozenset({State.SUBMITTED, State.QUEUED, State.FAILED}),
        State.SUBMITTED: frozenset(),
        # "Retry now" by staff after fixing the cause.
        State.FAILED: frozenset({State.QUEUED}),
    }

    account = models.ForeignKey(
        PlatformAccount, on_delete=models.PROTECT, related_name="transmissions", verbose_name=_("platform account")
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="einvoice_transmissions",
        verbose_name=_("customer"),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    invoice = models.OneToOneField(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="einvoice_transmission",
        verbose_name=_("invoice"),
    )
    credit_note = models.OneToOneField(
        "invoices.CreditNote",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="einvoice_transmission",
        verbose_name=_("credit note"),
    )
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    syntax = models.CharField(_("syntax"), max_length=10, blank=True)
    tracking_id = models.CharField(_("tracking id"), max_length=80, unique=True)
    flow_id = models.CharField(_("platform flow id"), max_length=120, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    submitting_since = models.DateTimeField(_("submitting since"), null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    routing_address = models.CharField(_("buyer routing address"), max_length=200, blank=True)
    last_status_code = models.CharField(_("last status"), max_length=3, blank=True, choices=LifecycleCode.choices)
    # Set when the platform rejected or the buyer refused the document (or the PA refused the
    # submission): the console's "needs attention" lists it until someone resolves it.
    needs_attention = models.BooleanField(_("needs attention"), default=False)
    attention_reason = models.TextField(_("attention reason"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("e-invoice transmission")
        verbose_name_plural = _("e-invoice transmissions")
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="invoice", invoice__isnull=False, credit_note__isnull=True))
                | Q(kind="credit_note", invoice__isnull=True, credit_note__isnull=False),
                name="einvoicing_transmission_one_document",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="einvoicing_tx_due"),
            # The sweeper claims queued rows in pk order: without it the claim walked every
            # submitted row of the table's history before the queued ones (bench/einvoicing.py).
            models.Index(fields=["id"], name="einvoicing_tx_queued", condition=Q(state="queued")),
            models.Index(fields=["needs_attention"], name="einvoicing_tx_attention", condition=Q(needs_attention=True)),
        ]

    def __str__(self) -> str:
        return self.tracking_id

    @property
    def document(self) -> models.Model:
        return self.invoice if self.kind == self.Kind.INVOICE else self.credit_note  # type: ignore[return-value]


class LifecycleStatus(models.Model):
    """One lifecycle status of a transmitted document; duplicate deliveries collapse on the unique key."""

    class Origin(models.TextChoices):
        ISSUER = "issuer", _("issuer")
        PLATFORM = "platform", _("platform")
        BUYER = "buyer", _("buyer")

    transmission = models.ForeignKey(
        Transmission, on_delete=models.PROTECT, related_name="statuses", verbose_name=_("transmission")
    )
    code = models.CharField(_("code"), max_length=3, choices=LifecycleCode.choices)
    occurred_at = models.DateTimeField(_("occurred"))
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices)
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    reason_text = models.TextField(_("reason"), blank=True)
    received_at = models.DateTimeField(_("received"))
    raw = models.JSONField(_("raw payload"), default=dict, blank=True)
    # A status Tarif sends as the issuer ("212 Encaissée"): the amount collected, and when the
    # platform took it (None: still to send; the sweeper sends it, so the hand-off is durable).
    amount = models.BigIntegerField(_("amount"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    # "212 Encaissée": the amount split per VAT rate (BR-FR-CDV-14, the MDG-43 "MEN" blocks),
    # [{"rate": "20", "amount": 5000}, ...] in minor units, adding up to `amount` (see
    # services.collected_vat_amounts); fixed in the payment's transaction like the amount.
    vat_amounts = models.JSONField(_("amount per VAT rate"), default=list, blank=True)
    sent_at = models.DateTimeField(_("sent to the platform"), null=True, blank=True)

    class Meta:
        verbose_name = _("e-invoice lifecycle status")
        verbose_name_plural = _("e-invoice lifecycle statuses")
        ordering = ["occurred_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["transmission", "code", "occurred_at", "origin"], name="einvoicing_status_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.get_code_display()}"


class DirectoryEntry(models.Model):
    """A cached directory (annuaire) answer: where a SIREN/SIRET receives e-invoices, or that it was not found."""

    livemode = models.BooleanField(_("live mode"), default=default_livemode)
    siren = models.CharField(_("SIREN"), max_length=9)
    siret = models.CharField(_("SIRET"), max_length=14, blank=True)
    found = models.BooleanField(_("found"), default=False)
    routing_address = models.CharField(_("routing address"), max_length=200, blank=True)
    platform = models.CharField(_("receiving platform"), max_length=200, blank=True)
    name = models.CharField(_("name"), max_length=200, blank=True)
    fetched_at = models.DateTimeField(_("fetched"))
    expires_at = models.DateTimeField(_("expires"))

    class Meta:
        verbose_name = _("e-invoicing directory entry")
        verbose_name_plural = _("e-invoicing directory entries")
        constraints = [
            models.UniqueConstraint(fields=["livemode", "siren", "siret"], name="einvoicing_directory_once"),
        ]

    def __str__(self) -> str:
        return f"{self.siren} {self.siret}".strip()
