"""Writes of the ledger: the chart of accounts, posting entries, period close (docs/accounting.md).

`entries_post` is the one way an entry gets written. The posting rules (postings.py) build
`EntryDraft`s; this module checks them (balanced, not empty), resolves the accounting date
(a closed month moves the entry to the first open month, dated on its first day), numbers
them to the functional currency and writes them in bulk (one INSERT for the entries, one for
the lines), unnumbered: posting takes no exclusive lock. `ledger_entries_validate` numbers
them later, continuously per journal and fiscal year (the "brouillard" → validation of French
bookkeeping), under the journal's sequence lock, in its own short transaction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from config import clock, mfa
from config.audit.services import audit_record, instance_snapshot
from config.bulk import allocate_ids, copy_insert, copy_supported
from config.types import ActingUser, JsonDict
from invoices.ledger.errors import (
    LedgerSettingsRefused,
    MissingAccount,
    MissingExchangeRate,
    PeriodClosed,
    PeriodCloseRefused,
    UnbalancedEntry,
)
from invoices.ledger.fx import conversion_rate, functional_amount_at
from invoices.ledger.locks import (
    accounting_period_qs_for_update,
    accounting_period_state_share,
    accounting_periods_share,
    journal_sequence_qs_for_update,
)
from invoices.ledger.models import (
    Account,
    AccountingPeriod,
    AccountMapping,
    JournalEntry,
    JournalLine,
    JournalSequence,
    LedgerSettings,
    Role,
)
from invoices.models import Brand

CHARTS_DIR = Path(__file__).resolve().parent / "charts"
# Who may change a brand's ledger settings: finance (config/roles.py gives its group "change" on the ledger).
SETTINGS_PERMISSION = "ledger.change_ledgersettings"


# -- chart of accounts -------------------------------------------------------------------------


def available_charts() -> list[str]:
    return sorted(path.stem for path in CHARTS_DIR.glob("*.json"))


def _settings_defaults() -> JsonDict:
    return {
        "chart": settings.TARIF_LEDGER_DEFAULT_CHART,
        "functional_currency": settings.TARIF_LEDGER_FUNCTIONAL_CURRENCY,
    }


def ledger_settings_get(*, brand: Brand) -> LedgerSettings:
    found, _created = LedgerSettings.objects.get_or_create(brand=brand, defaults=_settings_defaults())
    return found


def ledger_settings_read(*, brand: Brand) -> LedgerSettings:
    """The brand's settings: the stored row, else the defaults unsaved (a read writes nothing).

    Postings read the settings this way: only finance's change (`ledger_settings_update`) inserts
    the row. An insert inside a money movement's transaction would hold the brand's unique key
    until commit, and two finalizations taking it and the number series lock in opposite orders
    deadlocked (CI, 7 December 2026).
    """
    return LedgerSettings.objects.filter(brand=brand).first() or LedgerSettings(brand=brand, **_settings_defaults())


def _chart_data(name: str) -> JsonDict:
    data: JsonDict = json.loads((CHARTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def chart_write_off_vat_relief(*, ledger: LedgerSettings) -> bool:
    """The chart's default for the write-off VAT relief (its data file; on for the French PCG)."""
    name = ledger.chart if ledger.chart in available_charts() else settings.TARIF_LEDGER_DEFAULT_CHART
    return bool(_chart_data(name).get("write_off_vat_relief", False))


def write_off_vat_relief(*, brand_id: int) -> bool:
    """Does a write-off post the VAT of the unpaid part back? The brand's setting, else its chart's default."""
    ledger = ledger_settings_read(brand=Brand(pk=brand_id))
    if ledger.write_off_vat_relief is not None:
        return ledger.write_off_vat_relief
    return chart_write_off_vat_relief(ledger=ledger)


def ledger_settings_update(
    *, brand: Brand, write_off_vat_relief: bool | None, acting_user: ActingUser
) -> LedgerSettings:
    """Set whether a write-off recovers its VAT (None: the chart's default) for the write-offs to come.

    Only staff with the ledger settings permission (finance); the change is audited with the
    value before and after. Entries already posted keep what they posted (the ledger is append-only).
    """
    if acting_user is None or not acting_user.has_perm(SETTINGS_PERMISSION):
        raise LedgerSettingsRefused()
    with transaction.atomic(durable=True):
        ledger = ledger_settings_get(brand=brand)
        if ledger.write_off_vat_relief is write_off_vat_relief:
            return ledger  # nothing changes: nothing to audit
        before = instance_snapshot(ledger)
        ledger.write_off_vat_relief = write_off_vat_relief
        ledger.save(update_fields=["write_off_vat_relief"])
        audit_record(actor=acting_user, action="ledger.settings_update", obj=ledger, before=before, after=ledger)
    return ledger


def chart_load(*, brand: Brand, chart: str | None = None) -> int:
    """Create the accounts and default mappings of a chart data file for `brand` (idempotent).

    Existing accounts (same code) and mappings are kept as the brand edited them. Returns
    the number of accounts created.
    """
    name = chart or ledger_settings_read(brand=brand).chart
    if name not in available_charts():
        raise MissingAccount(_("Unknown chart of accounts %(name)s.") % {"name": name})
    data = _chart_data(name)
    created = 0
    with transaction.atomic(savepoint=False):
        for row in data["accounts"]:
            account, was_created = Account.objects.get_or_create(
                brand=brand, code=row["code"], defaults={"name": row["name"], "type": row["type"]}
            )
            created += int(was_created)
            if row.get("role"):
                AccountMapping.objects.get_or_create(
                    brand=brand,
                    role=row["role"],
                    match=row.get("match", AccountMapping.Match.VAT_RATE if row.get("value") else "default"),
                    value=row.get("value", ""),
                    defaults={"account": account},
                )
    return created


@dataclass(frozen=True)
class AccountKey:
    """What a posting line needs an account for; the most specific mapping wins."""

    role: str
    product_id: int | None = None
    tax_code: str = ""
    vat_rate: Decimal | None = None
    payment_method: str = ""


class AccountResolver:
    """Resolves roles to accounts for one brand, with the brand's mappings read once."""

    def __init__(self, brand_id: int) -> None:
        self.brand_id = brand_id
        rows = list(
            AccountMapping.objects.filter(brand_id=brand_id).values_list("role", "match", "value", "account_id")
        )
        if not rows:
            chart_load(brand=Brand.objects.get(pk=brand_id))
            rows = list(
                AccountMapping.objects.filter(brand_id=brand_id).values_list("role", "match", "value", "account_id")
            )
        self.rules = {(role, match, value): account_id for role, match, value, account_id in rows}
        self._reloaded = False

    def resolve(self, key: AccountKey) -> int:
        try:
            return self._resolve(key)
        except MissingAccount:
            if self._reloaded:
                raise
        # A role the chart's data file gained after the brand's chart was loaded (e.g. recovered
        # bad debts): load what is missing (edited accounts and mappings are kept), then retry.
        self._reloaded = True
        chart_load(brand=Brand.objects.get(pk=self.brand_id))
        rows = AccountMapping.objects.filter(brand_id=self.brand_id).values_list("role", "match", "value", "account_id")
        self.rules = {(role, match, value): account_id for role, match, value, account_id in rows}
        return self._resolve(key)

    def _resolve(self, key: AccountKey) -> int:
        if key.role.startswith("#"):  # an explicit account (reversals copy the original's)
            return int(key.role[1:])
        candidates: list[tuple[str, str]] = []
        if key.product_id is not None:
            candidates.append((AccountMapping.Match.PRODUCT, str(key.product_id)))
        if key.tax_code:
            candidates.append((AccountMapping.Match.TAX_CODE, key.tax_code))
        if key.vat_rate is not None:
            candidates.append((AccountMapping.Match.VAT_RATE, f"{Decimal(key.vat_rate):.3f}"))
        if key.payment_method:
            candidates.append((AccountMapping.Match.PAYMENT_METHOD, key.payment_method))
        candidates.append((AccountMapping.Match.DEFAULT, ""))
        for match, value in candidates:
            account_id = self.rules.get((key.role, match, value))
            if account_id is not None:
                return account_id
        raise MissingAccount(
            _("No account is mapped for %(role)s in this brand's chart of accounts.") % {"role": key.role}
        )


# -- posting -----------------------------------------------------------------------------------


@dataclass
class DraftLine:
    account: AccountKey
    debit: int = 0
    credit: int = 0
    label: str = ""
    customer_id: int | None = None
    tax_rate: Decimal | None = None
    tax_category: str = ""
    # The functional amount when it is not today's conversion (recognition releases deferred
    # revenue at the rate it was deferred at; a receivable is settled at its historical rate).
    functional: int | None = None
    # The side of a functional-only line (no document amount: an exchange difference reversed).
    functional_side: str = ""


@dataclass
class EntryDraft:
    brand_id: int
    livemode: bool
    journal: str
    day: date
    label: str
    source_type: str
    source_id: int
    movement: str
    currency: str
    customer_id: int | None = None
    document_number: str = ""
    document_date: date | None = None
    reversal_of_id: int | None = None
    lines: list[DraftLine] = field(default_factory=list)
    # The rate to convert at, when not the day's (a credit note or write-off at its invoice's rate).
    rate: Decimal | None = None
    # Post the functional imbalance left by lines at historical rates to exchange gain/loss
    # (a payment or refund of a foreign-currency receivable) instead of spreading it as rounding.
    fx_difference: bool = False

    def add(self, key: AccountKey, amount: int, *, side: str, **extra: object) -> None:
        """Add `amount` on `side` ("debit"/"credit"); a negative amount goes to the other side."""
        if amount == 0:
            return
        if amount < 0:
            side, amount = ("credit" if side == "debit" else "debit"), -amount
        line = DraftLine(account=key, customer_id=extra.pop("customer_id", self.customer_id), **extra)  # type: ignore[arg-type]
        setattr(line, side, amount)
        self.lines.append(line)


def ledger_enabled() -> bool:
    return bool(getattr(settings, "TARIF_LEDGER_ENABLED", False))


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return date(month.year + (month.month // 12), month.month % 12 + 1, 1)


def fiscal_year_of(day: date, *, start_month: int = 1) -> int:
    """Fiscal years are named after the calendar year they start in."""
    return day.year if day.month >= start_month else day.year - 1


def _accounting_dates(brand_id: int, livemode: bool, days: set[date]) -> dict[date, date]:
    """Each movement day -> the entry's date: itself, or the first day of the first open month.

    The months written to are locked in share mode (what the PostgreSQL trigger takes too): a
    close waits for this transaction, and a close that committed first is seen here, and
    the entries move on to the next open month.
    """
    for _attempt in range(12):
        months = {month_start(day) for day in days}
        closed = set(
            AccountingPeriod.objects.filter(
                brand_id=brand_id, livemode=livemode, state=AccountingPeriod.State.CLOSED, month__gte=min(months)
            ).values_list("month", flat=True)
        )
        result: dict[date, date] = {}
        for day in days:
            month = month_start(day)
            if month not in closed:
                result[day] = day
                continue
            while month in closed:
                month = _next_month(month)
            result[day] = month
        states = accounting_periods_share(
            brand_id=brand_id, livemode=livemode, months=sorted({month_start(d) for d in result.values()})
        )
        if all(state != AccountingPeriod.State.CLOSED for state in states.values()):
            return result
    raise PeriodClosed(_("The accounting periods keep closing while posting; try again."))


def _functional_lines(
    lines: list[JournalLine],
    fixed: Sequence[DraftLine],
    rate: Decimal,
    currency: str,
    functional: str,
    *,
    spread_residue: bool = True,
) -> int:
    """Convert each line; the rounding residue goes on the largest line so both sides agree.

    Lines with a known functional amount keep it. Returns the residue left when
    `spread_residue` is false (the exchange difference of a settlement).
    """
    for line, draft_line in zip(lines, fixed, strict=True):
        line.functional_debit = functional_amount_at(line.debit, rate, currency, functional)
        line.functional_credit = functional_amount_at(line.credit, rate, currency, functional)
        known = draft_line.functional
        if known is not None:
            if line.debit or (not line.credit and draft_line.functional_side == "debit"):
                line.functional_debit = known
            else:
                line.functional_credit = known
    residue = sum(line.functional_debit for line in lines) - sum(line.functional_credit for line in lines)
    if not residue or not spread_residue:
        return residue
    # The side split into more lines absorbs the rounding on its largest line, so a one-line
    # side (the receivable of an invoice) keeps its direct conversion; a line whose functional
    # amount is known keeps it too, unless every line is known.
    free = [line for line, draft_line in zip(lines, fixed, strict=True) if draft_line.functional is None] or lines
    debit_lines = [line for line in free if line.debit]
    credit_lines = [line for line in free if line.credit]
    if len(debit_lines) > len(credit_lines):
        largest = max(debit_lines, key=lambda line: line.functional_debit)
        largest.functional_debit -= residue
    else:
        largest = max(credit_lines, key=lambda line: line.functional_credit)
        largest.functional_credit += residue
    return 0


def entries_post(*, drafts: list[EntryDraft], at: datetime | None = None) -> list[JournalEntry]:
    """Write balanced, unnumbered entries for `drafts` (skipping movements already posted).

    Runs inside the caller's transaction (the money movement's): the entries commit or roll
    back with it. Raises UnbalancedEntry for a draft whose debits differ from its credits.
    """
    if not ledger_enabled():
        return []
    drafts = [draft for draft in drafts if any(line.debit or line.credit for line in draft.lines)]
    if not drafts:
        return []
    for draft in drafts:
        debits = sum(line.debit for line in draft.lines)
        credits = sum(line.credit for line in draft.lines)
        if debits != credits:
            raise UnbalancedEntry(  # untranslated: internal invariant of the ledger (double entry)
                f"{draft.movement} {draft.source_type}:{draft.source_id} is unbalanced (D {debits} / C {credits})"
            )
    posted_at = at or clock.system_now()
    with transaction.atomic(savepoint=False):
        already = _already_posted(drafts)
        drafts = [d for d in drafts if (d.source_type, d.source_id, d.movement) not in already]
        # One draft per movement even if a caller passed it twice.
        unique: dict[tuple[str, int, str], EntryDraft] = {}
        for draft in drafts:
            unique.setdefault((draft.source_type, draft.source_id, draft.movement), draft)
        drafts = list(unique.values())
        if not drafts:
            return []
        groups: dict[tuple[int, bool], list[EntryDraft]] = defaultdict(list)
        for draft in drafts:
            groups[(draft.brand_id, draft.livemode)].append(draft)
        prepared = []
        for (brand_id, livemode), brand_drafts in sorted(groups.items()):
            ledger = ledger_settings_read(brand=Brand(pk=brand_id))
            dates = _accounting_dates(brand_id, livemode, {draft.day for draft in brand_drafts})
            brand_drafts.sort(key=partial(_draft_order, dates))
            prepared.append((brand_id, livemode, brand_drafts, ledger, dates))
        entries: list[JournalEntry] = []
        lines: list[JournalLine] = []
        for brand_id, livemode, brand_drafts, ledger, dates in prepared:
            brand_entries, brand_lines = _build_brand(brand_id, livemode, brand_drafts, ledger, dates, posted_at)
            entries.extend(brand_entries)
            lines.extend(brand_lines)
        if copy_supported() and len(entries) >= COPY_FROM_ENTRIES:
            # A billing-run chunk: COPY (bulk_create's SQL compilation of ~1,000 entries and
            # ~3,500 lines cost about a third of the chunk's postings, issue 20).
            for entry, pk in zip(entries, allocate_ids(model=JournalEntry, count=len(entries)), strict=True):
                entry.pk = pk
            copy_insert(model=JournalEntry, objs=entries, with_pk=True)
            for line in lines:
                line.entry_id = line.entry.pk
            copy_insert(model=JournalLine, objs=lines, with_pk=False)
        else:
            JournalEntry.objects.bulk_create(entries, batch_size=2000)
            for line in lines:
                line.entry_id = line.entry.pk
            JournalLine.objects.bulk_create(lines, batch_size=5000)
    return entries


# From this many entries in one call (a bulk issue), they and their lines are written with COPY
# on PostgreSQL; one document's entry keeps its two INSERTs.
COPY_FROM_ENTRIES = 2


def _already_posted(drafts: list[EntryDraft]) -> set[tuple[str, int, str]]:
    by_type: dict[str, set[int]] = defaultdict(set)
    for draft in drafts:
        by_type[draft.source_type].add(draft.source_id)
    found: set[tuple[str, int, str]] = set()
    for source_type, ids in by_type.items():
        found.update(
            JournalEntry.objects.filter(source_type=source_type, source_id__in=ids).values_list(
                "source_type", "source_id", "movement"
            )
        )
    return found


def _rate_or_marker(currency: str, functional_currency: str, day: date) -> Decimal:
    """The day's rate; without one, 0 (functional amounts 0) unless TARIF_LEDGER_REQUIRE_RATES.

    Billing must not stop because rates were not imported: such entries carry rate 0, which
    the exports and reconciliation reports flag (docs/accounting.md "Multi-currency").
    """
    try:
        return conversion_rate(currency=currency, functional_currency=functional_currency, on=day)
    except MissingExchangeRate:
        if getattr(settings, "TARIF_LEDGER_REQUIRE_RATES", False):
            raise
        return Decimal(0)


def _draft_order(dates: dict[date, date], draft: EntryDraft) -> tuple[date, str, int, str]:
    return (dates[draft.day], draft.source_type, draft.source_id, draft.movement)


def _build_brand(
    brand_id: int,
    livemode: bool,
    drafts: list[EntryDraft],
    ledger: LedgerSettings,
    dates: dict[date, date],
    posted_at: datetime,
) -> tuple[list[JournalEntry], list[JournalLine]]:
    resolver = AccountResolver(brand_id)
    rates: dict[tuple[str, date], Decimal] = {}
    entries: list[JournalEntry] = []
    lines: list[JournalLine] = []
    for draft in drafts:
        day = dates[draft.day]
        year = fiscal_year_of(day, start_month=ledger.fiscal_year_start_month)
        rate_key = (draft.currency, draft.day)
        if rate_key not in rates:
            rates[rate_key] = _rate_or_marker(draft.currency, ledger.functional_currency, draft.day)
        rate = rates[rate_key] if draft.rate is None else draft.rate
        entry = JournalEntry(
            brand_id=brand_id,
            livemode=livemode,
            journal=draft.journal,
            fiscal_year=year,
            number=None,  # numbered at validation (ledger_entries_validate)
            date=day,
            label=draft.label[:300],
            source_type=draft.source_type,
            source_id=draft.source_id,
            movement=draft.movement,
            document_number=draft.document_number,
            document_date=draft.document_date,
            customer_id=draft.customer_id,
            currency=draft.currency,
            functional_currency=ledger.functional_currency,
            rate=rate,
            reversal_of_id=draft.reversal_of_id,
            created_at=posted_at,
        )
        entries.append(entry)
        kept = [line for line in draft.lines if line.debit or line.credit or line.functional]
        entry_lines = [
            JournalLine(
                entry=entry,
                position=position,
                account_id=resolver.resolve(line.account),
                debit=line.debit,
                credit=line.credit,
                customer_id=line.customer_id,
                label=(line.label or draft.label)[:300],
                tax_rate=line.tax_rate,
                tax_category=line.tax_category,
            )
            for position, line in enumerate(kept)
        ]
        settles = draft.fx_difference and rate != 0
        if draft.fx_difference and rate == 0:
            kept = [replace(line, functional=None) for line in kept]  # flagged entry: no rate, no amounts
        residue = _functional_lines(
            entry_lines, kept, rate, draft.currency, ledger.functional_currency, spread_residue=not settles
        )
        if residue:
            entry_lines.append(_exchange_difference_line(entry, len(entry_lines), resolver, residue, draft))
        lines.extend(entry_lines)
    return entries, lines


def _exchange_difference_line(
    entry: JournalEntry, position: int, resolver: AccountResolver, residue: int, draft: EntryDraft
) -> JournalLine:
    """The exchange gain (functional debits exceed credits) or loss of a settlement, in the
    functional currency only: the document currency has no difference to post."""
    gain = residue > 0
    return JournalLine(
        entry=entry,
        position=position,
        account_id=resolver.resolve(AccountKey(Role.FX_GAIN if gain else Role.FX_LOSS)),
        functional_debit=0 if gain else -residue,
        functional_credit=residue if gain else 0,
        customer_id=draft.customer_id,
        label=str(_("Exchange gain") if gain else _("Exchange loss"))[:300],
    )


def entry_reverse(
    *, entry: JournalEntry, movement: str, source_type: str, source_id: int, day: date
) -> JournalEntry | None:
    """A reversing entry (debits and credits swapped) for `entry`: the only way to correct one."""
    draft = EntryDraft(
        brand_id=entry.brand_id,
        livemode=entry.livemode,
        journal=entry.journal,
        day=day,
        label=_("Reversal of %(entry)s") % {"entry": entry.reference},
        source_type=source_type,
        source_id=source_id,
        movement=movement,
        currency=entry.currency,
        customer_id=entry.customer_id,
        document_number=entry.document_number,
        document_date=entry.document_date,
        reversal_of_id=entry.pk,
        rate=entry.rate,
    )
    for line in entry.lines.all():
        draft.lines.append(
            DraftLine(
                account=AccountKey(role=f"#{line.account_id}"),
                debit=line.credit,
                credit=line.debit,
                # the reversal mirrors the original in the functional currency too
                functional=line.functional_credit or line.functional_debit,
                functional_side="debit" if line.functional_credit else "credit",
                label=line.label,
                customer_id=line.customer_id,
                tax_rate=line.tax_rate,
                tax_category=line.tax_category,
            )
        )
    posted = entries_post(drafts=[draft])
    return posted[0] if posted else None


# -- closed periods and documents -----------------------------------------------------------


def accounting_period_check_open(*, brand_id: int, livemode: bool, at: datetime) -> None:
    """Refuse a document or payment dated `at` in a closed month of the brand's books (the
    month in the brand's time zone), with a clear error (409 in the API, a form error in the
    console). The month's period row is held in share mode, as the PostgreSQL triggers of
    migration 0003 (the backstop) do: a close racing this movement either waits for it to
    commit (and then validates its entry) or has committed first and the movement is refused
    here, never by the trigger."""
    zone = Brand.objects.filter(pk=brand_id).values_list("timezone", flat=True).first() or "UTC"
    month = month_start(at.astimezone(ZoneInfo(zone)).date())
    if (
        accounting_period_state_share(brand_id=brand_id, livemode=livemode, month=month)
        == AccountingPeriod.State.CLOSED
    ):
        raise PeriodClosed(
            _("The accounting period %(month)s is closed: nothing can be dated in it. Use a date in an open month.")
            % {"month": f"{month:%Y-%m}"}
        )


# -- validation: numbering the "brouillard" ----------------------------------------------------

_NUMBER_SQL = """
WITH numbered AS (
    SELECT id, row_number() OVER (ORDER BY date, id) AS position
      FROM ledger_journalentry
     WHERE brand_id = %s AND livemode = %s AND journal = %s AND fiscal_year = %s
       AND number IS NULL AND date <= %s
)
UPDATE ledger_journalentry
   SET number = %s + numbered.position, validated_at = %s
  FROM numbered
 WHERE ledger_journalentry.id = numbered.id
"""


def ledger_entries_validate(*, brand: Brand, livemode: bool, up_to: date) -> int:
    """Number every unvalidated entry of `brand` and mode dated on or before `up_to`.

    Continuous per (journal, fiscal year), after the sequence's last number, in (date, id)
    order within the entries validated now: one set-based UPDATE per journal and fiscal year,
    under the journal's sequence lock (taken only here, never by a money movement). An entry
    that commits after this statement's snapshot (or is dated later) is numbered by the next
    validation: numbers are chronological by validation (docs/accounting.md "Validation").
    Returns how many entries were numbered. Runs in the caller's transaction (a close) or its
    own (the daily task, an export).
    """
    validated_at = clock.system_now()
    with transaction.atomic(savepoint=False):
        pending = sorted(
            set(
                JournalEntry.objects.filter(
                    brand=brand, livemode=livemode, number__isnull=True, date__lte=up_to
                ).values_list("journal", "fiscal_year")
            )
        )
        if not pending:
            return 0
        JournalSequence.objects.bulk_create(
            [
                JournalSequence(brand=brand, livemode=livemode, journal=journal, fiscal_year=year)
                for journal, year in pending
            ],
            ignore_conflicts=True,
        )
        wanted = Q()
        for journal, year in pending:
            wanted |= Q(journal=journal, fiscal_year=year)
        sequences = list(journal_sequence_qs_for_update().filter(wanted, brand=brand, livemode=livemode))
        numbered = 0
        with connection.cursor() as cursor:
            for sequence in sequences:
                cursor.execute(
                    _NUMBER_SQL,
                    [
                        brand.pk,
                        livemode,
                        sequence.journal,
                        sequence.fiscal_year,
                        up_to,
                        sequence.last_number,
                        validated_at,
                    ],
                )
                count = cursor.rowcount
                if count:
                    JournalSequence.objects.filter(pk=sequence.pk).update(last_number=F("last_number") + count)
                numbered += count
    return numbered


def ledger_validation_day(*, brand: Brand, today: date | None = None) -> date:
    """The last day the daily validation numbers: `TARIF_LEDGER_VALIDATION_LAG_DAYS` before today
    in the brand's time zone (late postings of the last days still get numbered in date order)."""
    if today is None:
        today = clock.system_now().astimezone(ZoneInfo(brand.timezone or "UTC")).date()
    return today - timedelta(days=int(settings.TARIF_LEDGER_VALIDATION_LAG_DAYS))


def ledger_validate_all(*, today: date | None = None) -> int:
    """The beat task's body: validate every brand's books in both modes, one transaction each.

    Also creates the current and next months' period rows, so the first posting of a month
    seldom has to insert one inside a money movement's transaction."""
    numbered = 0
    for brand in Brand.objects.order_by("pk"):
        up_to = ledger_validation_day(brand=brand, today=today)
        this_month = month_start(up_to + timedelta(days=int(settings.TARIF_LEDGER_VALIDATION_LAG_DAYS)))
        AccountingPeriod.objects.create_missing(
            brand_id=brand.pk, livemodes=(True, False), months=(this_month, _next_month(this_month))
        )
        for livemode in (True, False):
            with transaction.atomic(durable=True):
                numbered += ledger_entries_validate(brand=brand, livemode=livemode, up_to=up_to)
    return numbered


def ledger_entries_validate_year(*, brand: Brand, livemode: bool, start: date, end: date) -> int:
    """Before an export that carries entry numbers (FEC, accounting tools): validate the
    entries of the period posted so far, in a transaction of its own unless the caller has one.
    `start` is informative: earlier unvalidated entries are numbered too (numbers go in order)."""
    with transaction.atomic(savepoint=False):
        return ledger_entries_validate(brand=brand, livemode=livemode, up_to=end)


def _month_end(month: date) -> date:
    return _next_month(month) - timedelta(days=1)


# -- period close (four-eyes, fresh TOTP) -------------------------------------------------------


def _check_staff(user: object, otp_verified_at: datetime | None) -> None:
    if user is None or not getattr(user, "is_staff", False):
        raise PeriodCloseRefused(_("Only staff members can close an accounting period."))
    if not mfa.is_fresh(otp_verified_at):
        raise PeriodCloseRefused(
            _("Confirm a fresh two-factor code (within the last %(minutes)s minutes) to close a period.")
            % {"minutes": mfa.fresh_minutes()}
        )


def accounting_period_close_request(
    *, brand: Brand, livemode: bool, month: date, requested_by: object, otp_verified_at: datetime | None
) -> AccountingPeriod:
    """First half of a close: a finance staff member asks (fresh TOTP); another one approves."""
    _check_staff(requested_by, otp_verified_at)
    month = month_start(month)
    with transaction.atomic(durable=True):
        AccountingPeriod.objects.create_missing(brand_id=brand.pk, livemodes=[livemode], months=[month])
        period = accounting_period_qs_for_update().get(brand=brand, livemode=livemode, month=month)
        if period.state != AccountingPeriod.State.OPEN:
            raise PeriodCloseRefused(_("This period is already %(state)s.") % {"state": period.get_state_display()})
        if month >= month_start(timezone.localdate(clock.system_now())):
            raise PeriodCloseRefused(_("Only a past month can be closed."))
        period.state = AccountingPeriod.State.CLOSING
        period.requested_by = requested_by  # type: ignore[assignment]
        period.requested_at = clock.system_now()
        period.save(update_fields=["state", "requested_by", "requested_at"])
    return period


def accounting_period_close_approve(
    *, period: AccountingPeriod, approver: object, otp_verified_at: datetime | None
) -> AccountingPeriod:
    """Second half: another staff member approves with their own fresh TOTP; the month closes.

    The period row is locked exclusively: running postings of the month (which hold it in
    share mode) finish first, later ones see it closed and move to the next open month.
    """
    _check_staff(approver, otp_verified_at)
    with transaction.atomic(durable=True):
        locked = accounting_period_qs_for_update().get(pk=period.pk)
        if locked.state != AccountingPeriod.State.CLOSING:
            raise PeriodCloseRefused(
                _("Only a period whose close was requested can be approved (this one is %(state)s).")
                % {"state": locked.get_state_display()}
            )
        if locked.requested_by_id == getattr(approver, "pk", None):
            raise PeriodCloseRefused(
                _("A period must be closed by someone other than the staff member who asked for it.")
            )
        earlier_open = AccountingPeriod.objects.filter(
            brand_id=locked.brand_id, livemode=locked.livemode, month__lt=locked.month
        ).exclude(state=AccountingPeriod.State.CLOSED)
        if earlier_open.exists():
            raise PeriodCloseRefused(_("Close the earlier months first."))
        # A period closes only with all its entries validated (numbered). The exclusive lock
        # above waited for the month's running postings; later ones go to the next open month.
        ledger_entries_validate(brand=locked.brand, livemode=locked.livemode, up_to=_month_end(locked.month))
        locked.state = AccountingPeriod.State.CLOSED
        locked.approved_by = approver  # type: ignore[assignment]
        locked.closed_by = locked.requested_by
        locked.closed_at = clock.system_now()
        locked.save(update_fields=["state", "approved_by", "closed_by", "closed_at"])
    return locked
