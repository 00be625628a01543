"""Bank statements imported by finance staff and their credit lines (docs/payments.md,
"Bank transfers and reconciliation").

Imported from billing/models.py so Django registers them in the billing app; kept in
their own module to keep the big models file readable.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.formatting import format_money
from customers.models import validate_currency_code


class BankStatement(models.Model):
    """One statement of one bank account, as imported from a CSV or CAMT.053 file.

    Unique per account and statement id: importing the same file again finds this row
    instead of creating another one.
    """

    class SourceFormat(models.TextChoices):
        CSV = "csv", _("CSV")
        CAMT053 = "camt053", _("CAMT.053 (ISO 20022)")

    account = models.CharField(
        _("account"),
        max_length=64,
        help_text=_("IBAN last 4 (never the full IBAN) or the bank's account id."),
    )
    statement_id = models.CharField(_("statement id"), max_length=100)
    period_start = models.DateField(_("from"), null=True, blank=True)
    period_end = models.DateField(_("to"), null=True, blank=True)
    source_format = models.CharField(_("source format"), max_length=10, choices=SourceFormat.choices)
    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    file_checksum = models.CharField(_("file checksum (SHA-256)"), max_length=64)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("imported by"),
    )
    imported_at = models.DateTimeField(_("imported at"))

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-imported_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["account", "statement_id"], name="bank_statement_once")]

    def __str__(self) -> str:
        return f"{self.account} {self.statement_id}"


class BankStatementLine(models.Model):
    """A credit on the account: money a customer sent, to match with open invoices.

    `fingerprint` is unique across all statements: the bank's entry reference when the
    statement has one, otherwise a hash of the account, date, amount, remittance text
    and the occurrence of that same tuple within the statement. A second import of the
    same (or an overlapping) statement finds the line and skips it.
    """

    class Status(models.TextChoices):
        UNMATCHED = "unmatched", _("unmatched")
        MATCHED = "matched", _("matched")
        PARTIALLY_MATCHED = "partially_matched", _("partially matched (invoice still open)")
        MANUALLY_MATCHED = "manually_matched", _("manually matched")
        IGNORED = "ignored", _("ignored")

    statement = models.ForeignKey(
        BankStatement, on_delete=models.PROTECT, related_name="lines", verbose_name=_("statement")
    )
    sequence = models.PositiveIntegerField(_("line"))
    fingerprint = models.CharField(_("fingerprint"), max_length=64, unique=True)
    entry_reference = models.CharField(_("bank entry reference"), max_length=100, blank=True)
    booking_date = models.DateField(_("booking date"))
    value_date = models.DateField(_("value date"), null=True, blank=True)
    amount = models.BigIntegerField(_("amount (minor units)"), validators=[MinValueValidator(1)])
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    debtor_name = models.CharField(_("debtor"), max_length=200, blank=True)
    remittance_info = models.TextField(_("remittance information"), blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.UNMATCHED)
    status_reason = models.CharField(
        _("reason"), max_length=300, blank=True, help_text=_("Why the line is unmatched or ignored.")
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bank_statement_lines",
        verbose_name=_("customer"),
    )
    payments = models.ManyToManyField(
        "billing.Payment", blank=True, related_name="bank_statement_lines", verbose_name=_("payments")
    )
    amount_credited = models.BigIntegerField(
        _("credited to balance (minor units)"), default=0, help_text=_("What no open invoice took.")
    )
    balance_transaction = models.ForeignKey(
        "invoices.BalanceTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("balance credit"),
    )
    matched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("matched or ignored by"),
    )
    matched_at = models.DateTimeField(_("matched at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bank statement line")
        verbose_name_plural = _("bank statement lines")
        ordering = ["statement", "sequence"]
        indexes = [models.Index(fields=["status", "statement"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="bank_line_credit_only"),
            models.CheckConstraint(
                condition=Q(amount_credited__gte=0) & Q(amount_credited__lte=models.F("amount")),
                name="bank_line_credit_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.booking_date} {format_money(self.amount, self.currency)} {self.debtor_name}".strip()
