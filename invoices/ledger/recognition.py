"""Revenue recognition (issue 19 item 3): deferred revenue (487) released to revenue (706).

Each subscription line billed in advance has a `RevenueSchedule` (its net amount over its
service period; credit notes and voids add negative schedules). `revenue_recognize` posts,
per brand, mode, currency and accounting date, one OD entry D 487 / C 706 for what became
due since the last run:

- `monthly` (TARIF_REVENUE_RECOGNITION): the reports' rule, so the revenue-recognition
  report reconciles to the ledger to the cent: a period containing n month ends (in the
  reports' time zone) is recognised straight-line over those n months, the remainder in
  the last; a period with no month end inside is recognised in the month it starts. Each
  month's share is dated on the month's last day, posted once the month is over.
- `daily`: what elapsed of the period up to the end of the run's day (exact fraction,
  rounded once per schedule and run), dated on the run's day.

Functional amounts are released at the rate the revenue was deferred at.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from config.money import round_fraction
from invoices.ledger.locks import revenue_schedules_claim_qs
from invoices.ledger.models import Journal, RevenueSchedule
from invoices.ledger.services import AccountKey, DraftLine, EntryDraft, entries_post, ledger_enabled


def _zone() -> ZoneInfo:
    return ZoneInfo(getattr(settings, "TARIF_REPORTS_TIMEZONE", "Europe/Paris"))


def _month_start(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    return datetime(local.year, local.month, 1, tzinfo=zone)


def _add_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def monthly_installments(*, amount: int, start: datetime, end: datetime) -> list[tuple[date, int]]:
    """(last day of the month, share) for each month the reports recognise `amount` in."""
    zone = _zone()
    month_ends = []
    boundary = _add_month(_month_start(start, zone))
    while boundary <= end:
        month_ends.append(boundary)
        boundary = _add_month(boundary)
    if not month_ends:
        first = _month_start(start, zone)
        return [((_add_month(first) - timedelta(days=1)).date(), amount)]
    n = len(month_ends)
    share = abs(amount) // n * (1 if amount >= 0 else -1)  # truncation toward zero, like SQL
    return [
        ((boundary - timedelta(days=1)).date(), share if k < n - 1 else amount - share * (n - 1))
        for k, boundary in enumerate(month_ends)
    ]


def due_through(schedule: RevenueSchedule, through: date, mode: str) -> dict[date, int]:
    """Cumulative recognisable amount of `schedule` at the end of `through`, by accounting date."""
    if mode == "monthly":
        due: dict[date, int] = defaultdict(int)
        for day, share in monthly_installments(
            amount=schedule.amount, start=schedule.service_start, end=schedule.service_end
        ):
            if day <= through:
                due[day] += share
        return due
    zone = _zone()
    cutoff = datetime.combine(through + timedelta(days=1), time.min, tzinfo=zone)
    total = (schedule.service_end - schedule.service_start).total_seconds()
    if total <= 0:
        return {through: schedule.amount} if schedule.service_start < cutoff else {}
    elapsed = min(max((cutoff - schedule.service_start).total_seconds(), 0), total)
    return {through: round_fraction(Fraction(schedule.amount) * Fraction(int(elapsed), int(total)))}


def revenue_recognize(*, through: date, mode: str | None = None, brand_id: int | None = None) -> int:
    """Post the recognition entries due at the end of `through`; returns the entries posted.

    Idempotent: a schedule's `recognized` moves with the entry in one transaction, so a
    second run for the same day finds nothing left to post.
    """
    if not ledger_enabled():
        return 0
    mode = mode or settings.TARIF_REVENUE_RECOGNITION
    with transaction.atomic(savepoint=False):
        schedules = RevenueSchedule.objects.exclude(recognized=F("amount")).filter(
            service_start__lt=datetime.combine(through + timedelta(days=1), time.min, tzinfo=_zone())
        )
        if brand_id is not None:
            schedules = schedules.filter(brand_id=brand_id)
        schedules = revenue_schedules_claim_qs(schedules)
        # (brand, livemode, currency, day) -> (deferred account, revenue account) -> (amount, functional)
        groups: dict[tuple[int, bool, str, date], dict[tuple[int, int], list[int]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0])
        )
        changed = []
        for schedule in schedules.iterator(chunk_size=2000):
            due = due_through(schedule, through, mode)
            cumulative = sum(due.values())
            if cumulative == schedule.recognized:
                continue
            # Post each date's not-yet-recognised part, earliest first. Shares of a schedule all
            # carry its sign, so cumulative amounts only grow in magnitude.
            sign = 1 if schedule.amount >= 0 else -1
            recognized = sign * schedule.recognized
            functional_target = _functional_share(schedule, cumulative)
            remaining_functional = functional_target - schedule.functional_recognized
            portions = []
            running = 0
            for day, share in sorted(due.items()):
                previous, running = running, running + sign * share
                portion = running - max(recognized, previous)
                if portion > 0:
                    portions.append((day, sign * portion))
            for index, (day, portion) in enumerate(portions):
                if index == len(portions) - 1:
                    functional = remaining_functional
                else:
                    functional = _functional_share(schedule, portion)
                    remaining_functional -= functional
                bucket = groups[(schedule.brand_id, schedule.livemode, schedule.currency, day)]
                pair = bucket[(schedule.deferred_account_id, schedule.revenue_account_id)]
                pair[0] += portion
                pair[1] += functional
            schedule.recognized = cumulative
            schedule.functional_recognized = functional_target
            changed.append(schedule)
        drafts = []
        for (brand, livemode, currency, day), pairs in sorted(groups.items()):
            draft = EntryDraft(
                brand_id=brand,
                livemode=livemode,
                journal=Journal.MISC,
                day=day,
                label=_("Revenue recognised on %(day)s") % {"day": day.isoformat()},
                source_type=f"recognition:{brand}:{int(livemode)}",
                source_id=int(day.strftime("%Y%m%d")),
                movement=f"revenue_recognized_{currency}_{through:%Y%m%d}",
                currency=currency,
            )
            for (deferred, revenue), (amount, functional) in sorted(pairs.items()):
                if amount == 0:
                    continue
                sign = 1 if amount > 0 else -1
                draft.lines.append(
                    DraftLine(
                        account=AccountKey(f"#{deferred}"),
                        debit=amount if sign > 0 else 0,
                        credit=-amount if sign < 0 else 0,
                        functional=abs(functional),
                    )
                )
                draft.lines.append(
                    DraftLine(
                        account=AccountKey(f"#{revenue}"),
                        credit=amount if sign > 0 else 0,
                        debit=-amount if sign < 0 else 0,
                        functional=abs(functional),
                    )
                )
            drafts.append(draft)
        posted = entries_post(drafts=drafts)
        RevenueSchedule.objects.bulk_update(changed, ["recognized", "functional_recognized"], batch_size=5000)
    return len(posted)


def _functional_share(schedule: RevenueSchedule, amount: int) -> int:
    if schedule.amount == 0:
        return 0
    return round_fraction(Fraction(schedule.functional_amount) * Fraction(amount, schedule.amount))
