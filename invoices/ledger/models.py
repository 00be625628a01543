"""The double-entry ledger (issue 19): chart of accounts, mapping rules, journal entries, periods.

Amounts are integer minor units: `debit`/`credit` in the document currency, `functional_*`
in the brand's functional currency (`LedgerSettings.functional_currency`) at `rate`.
Entries are append-only and balanced; both rules live in the posting service and, on
PostgreSQL, in triggers (migration 0001): a deferred constraint trigger checks each entry's
balance at commit, another refuses UPDATE/DELETE, a third refuses an entry dated in a closed
period. Corrections are reversing entries (`reversal_of`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class AccountType(models.TextChoices):
    ASSET = "asset", _("asset")
    LIABILITY = "liability", _("liability")
    EQUITY = "equity", _("equity")
    INCOME = "income", _("income")
    EXPENSE = "expense", _("expense")


class Role(models.TextChoices):
    """What an account is used for by the posting rules; mappings resolve a role to an account."""

    RECEIVABLE = "receivable", _("customer receivables")
    ADVANCES = "advances", _("customer advances and credit balances")
    DEFERRED_REVENUE = "deferred_revenue", _("deferred revenue")
    REVENUE_SERVICES = "revenue_services", _("services revenue")
    REVENUE_GOODS = "revenue_goods", _("goods revenue")
    VAT_COLLECTED = "vat_collected", _("VAT collected")
    BANK = "bank", _("bank")
    CLEARING = "clearing", _("payment clearing")
    BANK_FEES = "bank_fees", _("bank and gateway fees")
    BAD_DEBTS = "bad_debts", _("bad debts")
    BAD_DEBTS_RECOVERED = "bad_debts_recovered", _("recovered bad debts")
    DISCOUNTS = "discounts", _("discounts granted")
    FX_LOSS = "fx_loss", _("exchange losses")
    FX_GAIN = "fx_gain", _("exchange gains")
    MISC_EXPENSE = "misc_expense", _("miscellaneous expenses")
    OTHER = "other", _("other third parties")
    PREPAID_CREDITS = "prepaid_credits", _("prepaid credits")


class Journal(models.TextChoices):
    SALES = "VT", _("sales")
    BANK = "BQ", _("bank")
    MISC = "OD", _("miscellaneous operations")


class LedgerSettings(models.Model):
    """A brand's books: its chart (a data file in invoices/ledger/charts/) and functional currency."""

    brand = models.OneToOneField(
        "invoices.Brand", on_delete=models.PROTECT, related_name="ledger_settings", verbose_name=_("brand")
    )
    chart = models.CharField(_("chart of accounts"), max_length=30, default="pcg")
    functional_currency = models.CharField(_("functional currency"), max_length=3, default="EUR")
    fiscal_year_start_month = models.PositiveSmallIntegerField(_("fiscal year starts in month"), default=1)
    # Empty: the chart's default ("write_off_vat_relief" in its data file: on for the French PCG).
    write_off_vat_relief = models.BooleanField(
        _("recover VAT on written-off invoices"),
        null=True,
        blank=True,
        help_text=_(
            "A write-off posts the VAT of the unpaid part back (D 44571x) and only the net to bad debts. "
            "Empty: the chart's default."
        ),
    )

    class Meta:
        verbose_name = _("ledger settings")
        verbose_name_plural = _("ledger settings")

    def __str__(self) -> str:
        return f"{self.brand} ({self.chart}, {self.functional_currency})"


class Account(models.Model):
    """One account of a brand's chart (configuration, like the brand: shared by both modes)."""

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="ledger_accounts", verbose_name=_("brand")
    )
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=200)
    type = models.CharField(_("type"), max_length=10, choices=AccountType.choices)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["brand", "code"]
        constraints = [models.UniqueConstraint(fields=["brand", "code"], name="ledger_account_code_per_brand")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class AccountMapping(models.Model):
    """A rule: for `role`, use `account`, when the movement matches (most specific rule wins).

    `match` is `default` (the brand's default for the role), `product` (value: product id),
    `tax_code`, `vat_rate` (value: the rate as "20.000") or `payment_method` (value: the
    payment method type or gateway, e.g. "card", "sepa_debit", "stripe").
    """

    class Match(models.TextChoices):
        DEFAULT = "default", _("brand default")
        PRODUCT = "product", _("product")
        TAX_CODE = "tax_code", _("tax code")
        VAT_RATE = "vat_rate", _("VAT rate")
        PAYMENT_METHOD = "payment_method", _("payment method")

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.CASCADE, related_name="ledger_mappings", verbose_name=_("brand")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    match = models.CharField(_("match"), max_length=16, choices=Match.choices, default=Match.DEFAULT)
    value = models.CharField(_("value"), max_length=64, blank=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="mappings", verbose_name=_("account"))

    class Meta:
        verbose_name = _("account mapping")
        verbose_name_plural = _("account mappings")
        ordering = ["brand", "role", "match", "value"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "role", "match", "value"], name="ledger_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.match}={self.value} -> {self.account.code}"


class ExchangeRate(models.Model):
    """ECB-style rate: one unit of `base` buys `rate` units of `currency` on `date`."""

    base = models.CharField(_("base currency"), max_length=3, default="EUR")
    currency = models.CharField(_("currency"), max_length=3)
    date = models.DateField(_("date"))
    rate = models.DecimalField(_("rate"), max_digits=24, decimal_places=10)
    source = models.CharField(_("source"), max_length=50, default="manual")

    class Meta:
        verbose_name = _("exchange rate")
        verbose_name_plural = _("exchange rates")
        ordering = ["base", "currency", "-date"]
        constraints = [
            models.UniqueConstraint(fields=["base", "currency", "date"], name="ledger_rate_per_day"),
            models.CheckConstraint(condition=Q(rate__gt=Decimal(0)), name="ledger_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.currency} ({self.date})"


class JournalSequence(models.Model):
    """The last entry number of a journal in a fiscal year (continuous, assigned at validation)."""

    brand = models.ForeignKey("invoices.Brand", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(default=True)
    journal = models.CharField(max_length=4, choices=Journal.choices)
    fiscal_year = models.PositiveIntegerField()
    last_number = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "livemode", "journal", "fiscal_year"], name="ledger_sequence_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.journal} {self.fiscal_year}: {self.last_number}"


class AccountingPeriodQuerySet(models.QuerySet["AccountingPeriod"]):
    def create_missing(self, *, brand_id: int, livemodes: Iterable[bool], months: Iterable[date]) -> None:
        """Create the open rows of these months that do not exist yet, in one statement.

        Rows go in (livemode, month) order, so two transactions creating overlapping months wait
        for each other's unique keys in the same order. Each key inserted is held until commit,
        like a lock: see docs/billing.md, "Lock order"."""
        rows = [
            self.model(brand_id=brand_id, livemode=livemode, month=month)
            for livemode in sorted(set(livemodes))
            for month in sorted(set(months))
        ]
        if rows:
            self.bulk_create(rows, ignore_conflicts=True)


class AccountingPeriod(models.Model):
    """A month of a brand's books in one mode: open, or closed (four-eyes, fresh TOTP)."""

    class State(models.TextChoices):
        OPEN = "open", pgettext_lazy("accounting period", "open")
        CLOSING = "closing", pgettext_lazy("accounting period", "close requested")
        CLOSED = "closed", pgettext_lazy("accounting period", "closed")

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="accounting_periods", verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"), default=True)
    month = models.DateField(_("month"), help_text=_("The first day of the month."))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.OPEN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("close requested by"),
    )
    requested_at = models.DateTimeField(_("close requested"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("closed by"),
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    objects = AccountingPeriodQuerySet.as_manager()

    class Meta:
        verbose_name = _("accounting period")
        verbose_name_plural = _("accounting periods")
        ordering = ["brand", "-month"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "livemode", "month"], name="ledger_period_unique"),
            models.CheckConstraint(condition=Q(month__day=1), name="ledger_period_first_of_month"),
            models.CheckConstraint(
                condition=~Q(state="closed") | (Q(approved_by__isnull=False) & Q(closed_by__isnull=False)),
                name="ledger_period_closed_is_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand} {self.month:%Y-%m} ({self.get_state_display()})"


class JournalEntry(models.Model):
    """One balanced entry. Never changes once written (PostgreSQL refuses UPDATE and DELETE)."""

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="journal_entries", verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"), default=True)
    journal = models.CharField(_("journal"), max_length=4, choices=Journal.choices)
    fiscal_year = models.PositiveIntegerField(_("fiscal year"))
    # NULL until the entry is validated (the "brouillard"): `ledger_entries_validate` numbers
    # entries continuously per journal and fiscal year, in validation order.
    number = models.PositiveBigIntegerField(_("entry number"), null=True, blank=True)
    validated_at = models.DateTimeField(_("validated"), null=True, blank=True)
    date = models.DateField(_("date"))
    label = models.CharField(_("label"), max_length=300)
    # What moved money: e.g. ("invoice", 12, "invoice_finalized"); once per movement.
    source_type = models.CharField(_("source type"), max_length=30)
    source_id = models.BigIntegerField(_("source id"))
    movement = models.CharField(_("movement"), max_length=40)
    document_number = models.CharField(_("document number"), max_length=50, blank=True)
    document_date = models.DateField(_("document date"), null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="journal_entries",
        verbose_name=_("customer"),
    )
    currency = models.CharField(_("currency"), max_length=3)
    functional_currency = models.CharField(_("functional currency"), max_length=3)
    rate = models.DecimalField(_("exchange rate"), max_digits=24, decimal_places=10, default=Decimal(1))
    reversal_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversals",
        verbose_name=_("reverses"),
    )
    created_at = models.DateTimeField(_("posted"))

    class Meta:
        verbose_name = _("journal entry")
        verbose_name_plural = _("journal entries")
        ordering = ["brand", "journal", "fiscal_year", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "livemode", "journal", "fiscal_year", "number"], name="ledger_entry_number_unique"
            ),
            models.UniqueConstraint(fields=["source_type", "source_id", "movement"], name="ledger_entry_once"),
            models.CheckConstraint(
                condition=Q(number__isnull=True, validated_at__isnull=True)
                | Q(number__isnull=False, validated_at__isnull=False),
                name="ledger_entry_numbered_when_validated",
            ),
        ]
        indexes = [
            models.Index(fields=["brand", "livemode", "date"], name="ledger_entry_date_idx"),
            models.Index(
                fields=["brand", "livemode", "journal", "fiscal_year", "date"],
                condition=Q(number__isnull=True),
                name="ledger_entry_unvalidated_idx",
            ),
            models.Index(fields=["customer"], name="ledger_entry_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.label}"

    @property
    def reference(self) -> str:
        """`VT2026-0000042`, or `VT2026-(draft #id)` before validation numbers it."""
        if self.number is None:
            return f"{self.journal}{self.fiscal_year}-({_('draft')} #{self.pk})"
        return f"{self.journal}{self.fiscal_year}-{self.number:07d}"


class JournalLine(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines", verbose_name=_("entry"))
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="journal_lines", verbose_name=_("account")
    )
    debit = models.BigIntegerField(_("debit"), default=0)
    credit = models.BigIntegerField(_("credit"), default=0)
    functional_debit = models.BigIntegerField(_("debit (functional currency)"), default=0)
    functional_credit = models.BigIntegerField(_("credit (functional currency)"), default=0)
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="journal_lines",
        verbose_name=_("customer"),
    )
    label = models.CharField(_("label"), max_length=300, blank=True)
    # For the VAT summary: the VAT rate and category (EN 16931 codes: S, AE reverse charge,
    # K intra-EU, G export, E exempt, O out of scope) of revenue and VAT lines.
    tax_rate = models.DecimalField(_("VAT rate (%)"), max_digits=6, decimal_places=3, null=True, blank=True)
    tax_category = models.CharField(_("VAT category"), max_length=3, blank=True)

    class Meta:
        verbose_name = _("journal line")
        verbose_name_plural = _("journal lines")
        ordering = ["entry", "position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(debit__gte=0, credit__gte=0, functional_debit__gte=0, functional_credit__gte=0),
                name="ledger_line_not_negative",
            ),
            models.CheckConstraint(condition=Q(debit=0) | Q(credit=0), name="ledger_line_one_side"),
        ]
        indexes = [models.Index(fields=["account", "entry"], name="ledger_line_account_idx")]

    def __str__(self) -> str:
        return f"{self.account.code} D{self.debit} C{self.credit}"


class RevenueSchedule(models.Model):
    """Deferred revenue of one invoice line billed in advance, recognised over its service period."""

    brand = models.ForeignKey("invoices.Brand", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(default=True)
    # The document it comes from (the billing run's bulk path inserts lines without reading their ids).
    invoice_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    invoice_line_id = models.BigIntegerField(null=True, blank=True)
    credit_note_id = models.BigIntegerField(null=True, blank=True)
    credit_note_line_id = models.BigIntegerField(null=True, blank=True)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+", null=True)
    currency = models.CharField(max_length=3)
    revenue_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    deferred_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField(help_text="Deferred amount (negative for a credit note's reversal).")
    functional_amount = models.BigIntegerField()
    service_start = models.DateTimeField()
    service_end = models.DateTimeField()
    recognized = models.BigIntegerField(default=0)
    functional_recognized = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["brand", "livemode", "recognized"], name="ledger_schedule_open_idx")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} {self.service_start:%Y-%m-%d}..{self.service_end:%Y-%m-%d}"


class LedgerExport(models.Model):
    """A ledger export prepared in the background (large years): the row is the hand-off
    (a sweeper re-sends pending ones), `rows_done`/`rows_total` the progress the console shows."""

    class Kind(models.TextChoices):
        FEC = "fec", _("FEC (tax audit file)")
        JOURNAL_CSV = "journal_csv", _("Journal (CSV)")
        JOURNAL_XLSX = "journal_xlsx", _("Journal (XLSX)")
        TRIAL_BALANCE_CSV = "trial_balance_csv", _("Trial balance (CSV)")
        TRIAL_BALANCE_XLSX = "trial_balance_xlsx", _("Trial balance (XLSX)")
        GENERAL_LEDGER_CSV = "general_ledger_csv", _("General ledger of an account (CSV)")
        QUADRA = "quadra", _("Quadratus / QuadraCOMPTA (ASCII)")
        SAGE_PNM = "sage_pnm", _("Sage 100 (PNM)")

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting")
        RUNNING = "running", _("running")
        DONE = "done", _("ready")
        FAILED = "failed", _("failed")

    brand = models.ForeignKey("invoices.Brand", on_delete=models.PROTECT, related_name="+", verbose_name=_("brand"))
    livemode = models.BooleanField(_("live mode"), default=True)
    kind = models.CharField(_("format"), max_length=20, choices=Kind.choices)
    start = models.DateField(_("from"))
    end = models.DateField(_("to"))
    fiscal_year = models.PositiveIntegerField(_("fiscal year"), null=True, blank=True)
    account_code = models.CharField(_("account"), max_length=20, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    rows_total = models.PositiveBigIntegerField(_("rows"), default=0)
    rows_done = models.PositiveBigIntegerField(_("rows written"), default=0)
    file = models.FileField(_("file"), upload_to="ledger-exports/", blank=True)
    filename = models.CharField(_("file name"), max_length=100, blank=True)
    error = models.TextField(_("error"), blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("requested by")
    )
    created_at = models.DateTimeField(_("requested"))
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("ledger export")
        verbose_name_plural = _("ledger exports")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(rows_done__lte=F("rows_total")), name="ledger_export_progress_bounded"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.start}–{self.end}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(self.rows_done * 100 / self.rows_total) if self.rows_total else 0
