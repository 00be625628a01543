from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField
from stdnum.fr import siren as siren_number

from config.modes import default_livemode
from config.money import CurrencyError, validate_currency
from customers.fields import EncryptedTextField
from invoices.vat import VatNumberError, validate_vat_number, vat_country


def validate_currency_code(value: str) -> None:
    try:
        if validate_currency(value) != value:
            raise ValidationError(_("Write the currency code in capitals, e.g. EUR."))
    except CurrencyError as error:
        raise ValidationError(str(error)) from error


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        # OSError: a name longer than the file system allows is looked up as a path (a 500 before).
        raise ValidationError(_("'%(value)s' is not a known time zone."), params={"value": value[:64]}) from error


def validate_siren(value: str) -> None:
    if value and not siren_number.is_valid(value):
        raise ValidationError(_("'%(value)s' is not a valid SIREN number."), params={"value": value})


class Language(models.TextChoices):
    FR = "fr", _("French")
    EN = "en", _("English")


class Customer(models.Model):
    """The billing identity: who is invoiced, where, in which language and currency."""

    legal_name = models.CharField(_("legal name"), max_length=200)
    email = models.EmailField(_("billing email"))
    country = CountryField(_("country"))
    preferred_language = models.CharField(
        _("preferred language"), max_length=2, choices=Language.choices, default=Language.FR
    )
    currency = models.CharField(_("currency"), max_length=3, default="EUR", validators=[validate_currency_code])
    timezone = models.CharField(
        _("time zone"),
        max_length=64,
        default=settings.TARIF_DEFAULT_TIMEZONE,
        validators=[validate_timezone],
        help_text=_("Billing periods are computed in this time zone."),
    )
    is_business = models.BooleanField(_("business customer"), default=True)
    tax_id = EncryptedTextField(_("VAT number"), blank=True, help_text=_("Encrypted at rest."))
    siren = models.CharField(_("SIREN"), max_length=9, blank=True, validators=[validate_siren])
    address_line1 = models.CharField(_("address"), max_length=200, blank=True)
    address_line2 = models.CharField(_("address (continued)"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    delivery_address = models.TextField(
        _("delivery address"), blank=True, help_text=_("Only when it differs from the billing address.")
    )

    class EInvoiceSyntax(models.TextChoices):
        AUTO = "auto", _("automatic (the platform's default, else Factur-X)")
        FACTUR_X = "factur-x", _("Factur-X (PDF/A-3 with CII XML)")
        UBL = "ubl", _("UBL 2.1")
        CII = "cii", _("CII D16B")

    einvoice_syntax = models.CharField(
        _("e-invoice format"),
        max_length=8,
        choices=EInvoiceSyntax.choices,
        default=EInvoiceSyntax.AUTO,
        # Blank is "auto" too: forms that predate the field (imports, older console posts) may omit it.
        blank=True,
        help_text=_("The syntax of the electronic invoices sent to this customer's platform."),
    )
    invoice_email = models.EmailField(_("invoice email"), blank=True, help_text=_("Defaults to the billing email."))
    brand = models.ForeignKey(
        "invoices.Brand",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="customers",
        verbose_name=_("brand"),
        help_text=_("Which of your brands invoices this customer (the default brand if empty)."),
    )
    test_clock = models.ForeignKey(
        "billing.TestClock",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="customers",
        verbose_name=_("test clock"),
        help_text=_("A test customer lives at this clock's time."),
    )
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    notes = models.TextField(
        _("internal notes"),
        blank=True,
        max_length=5000,
        help_text=_("For your team only: never shown to the customer, never on an invoice."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["legal_name", "pk"]
        indexes = [
            models.Index(fields=["email"]),
            # The console list's default order (issue 20): no sort of every customer per page.
            models.Index(fields=["legal_name", "id"], name="customer_legal_name_idx"),
            # The console's country filter: the countries in use, one index probe each (issue 20).
            models.Index(fields=["livemode", "country"], name="customer_mode_country_idx"),
        ]

    def __str__(self) -> str:
        return self.legal_name

    def clean(self) -> None:
        super().clean()
        if self.tax_id:
            try:
                self.tax_id = validate_vat_number(self.tax_id)
            except VatNumberError as error:
                raise ValidationError({"tax_id": str(error)}) from error
            country = "GR" if vat_country(self.tax_id) == "EL" else vat_country(self.tax_id)
            if self.country and country != str(self.country):
                raise ValidationError(
                    {
                        "tax_id": _("This VAT number belongs to %(vat)s, not to the customer's country.")
                        % {"vat": country}
                    }
                )

    @property
    def invoice_recipient(self) -> str:
        return self.invoice_email or self.email


class CustomerUser(models.Model):
    """A portal login that acts for one customer."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_link", verbose_name=_("user")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="portal_users", verbose_name=_("customer")
    )
    invited_at = models.DateTimeField(_("invited"), auto_now_add=True)

    class Meta:
        verbose_name = _("portal user")
        verbose_name_plural = _("portal users")

    def __str__(self) -> str:
        return f"{self.user} → {self.customer}"


# --- Customer notifications (docs/portal.md): preferences, and a log that sends each once ---


class NotificationKind(models.TextChoices):
    UPCOMING_RENEWAL = "upcoming_renewal", _("Upcoming renewal")
    INVOICE_FINALIZED = "invoice_finalized", _("New invoice")
    INVOICE_SENT = "invoice_sent", _("Invoice sent by staff")
    PAYMENT_RECEIPT = "payment_receipt", _("Payment receipt")
    PAYMENT_FAILED = "payment_failed", _("Payment failed")
    DUNNING_STEP = "dunning_step", _("Payment reminder")
    CARD_EXPIRING = "card_expiring", _("Card expiring soon")
    TRIAL_ENDING = "trial_ending", _("Trial ending")
    PLAN_CHANGED = "plan_changed", _("Plan changed")
    SUBSCRIPTION_CANCELED = "subscription_canceled", _("Subscription canceled")
    SUBSCRIPTION_PAUSED = "subscription_paused", _("Subscription paused")
    QUOTE_SENT = "quote_sent", _("Quote sent")
    PORTAL_INVITATION = "portal_invitation", _("Portal invitation")


# Reminders a customer may turn off; every other kind is transactional and always sent.
OPTIONAL_NOTIFICATIONS = frozenset(
    {NotificationKind.UPCOMING_RENEWAL, NotificationKind.CARD_EXPIRING, NotificationKind.TRIAL_ENDING}
)


class NotificationPreference(models.Model):
    """A customer's choice for one optional notification kind (absent row: enabled)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="notification_preferences", verbose_name=_("customer")
    )
    kind = models.CharField(_("notification"), max_length=32, choices=NotificationKind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [models.UniqueConstraint(fields=["customer", "kind"], name="notification_preference_once")]

    def __str__(self) -> str:
        return f"{self.customer}: {self.kind} {'on' if self.enabled else 'off'}"


class NotificationLog(models.Model):
    """One notification for one customer: queued, then sent (or failed, or skipped).

    (customer, kind, dedupe key) is unique: whatever replays an event or a daily scan,
    the same notification is never sent twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("queued")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped (turned off)")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("customer")
    )
    kind = models.CharField(_("notification"), max_length=32, choices=NotificationKind.choices)
    dedupe_key = models.CharField(_("deduplication key"), max_length=120)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    data = models.JSONField(_("data"), default=dict, blank=True)
    event_id = models.BigIntegerField(_("domain event"), null=True, blank=True, db_index=True)
    recipient = models.EmailField(_("recipient"), blank=True)
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    language = models.CharField(_("language"), max_length=2, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    # When a worker took the row to send it (status `sending`): the SMTP call happens after that
    # commit, with no lock held; a claim older than the stale delay is taken again.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "dedupe_key"], name="notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.dedupe_key} ({self.status})"
