"""Read-only queries: a customer's answers (for the timeline) and the feedback reports.

Scores are aggregated in SQL (COUNT ... FILTER / AVG per month), never by looping over rows.
NPS = % promoters (9-10) - % detractors (0-6), rounded half up to a whole number, as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncMonth

from feedback.models import Answer, Choice, Question, SurveyResponse, Trigger


def survey_responses_for_customer(*, customer: Any) -> QuerySet[SurveyResponse]:
    """Every response of `customer`, oldest first, with answers, questions and choices loaded
    (the customer timeline lists them next to invoices and plan changes)."""
    return (
        SurveyResponse.objects.filter(customer=customer)
        .select_related("survey", "invitation", "subscription")
        .prefetch_related("answers__question", "answers__choices")
        .order_by("submitted_at", "pk")
    )


def _answers(*, kind: str, start: datetime | None, end: datetime | None, survey_id: int | None) -> QuerySet[Answer]:
    answers = Answer.objects.filter(question__kind=kind, score__isnull=False)
    if start is not None:
        answers = answers.filter(response__submitted_at__gte=start)
    if end is not None:
        answers = answers.filter(response__submitted_at__lt=end)
    if survey_id is not None:
        answers = answers.filter(response__survey_id=survey_id)
    return answers


def nps_score(*, promoters: int, detractors: int, total: int) -> int | None:
    if total == 0:
        return None
    return int((Decimal(100 * (promoters - detractors)) / total).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class NpsPoint:
    month: datetime | None  # None for the whole period
    promoters: int
    passives: int
    detractors: int

    @property
    def total(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> int | None:
        return nps_score(promoters=self.promoters, detractors=self.detractors, total=self.total)


_NPS_COUNTS = {
    "promoters": Count("pk", filter=Q(score__gte=9)),
    "passives": Count("pk", filter=Q(score__gte=7, score__lte=8)),
    "detractors": Count("pk", filter=Q(score__lte=6)),
}


def nps_summary(
    *, start: datetime | None = None, end: datetime | None = None, survey_id: int | None = None
) -> NpsPoint:
    row = _answers(kind=Question.Kind.NPS, start=start, end=end, survey_id=survey_id).aggregate(**_NPS_COUNTS)
    return NpsPoint(month=None, **row)


def nps_over_time(
    *, start: datetime | None = None, end: datetime | None = None, survey_id: int | None = None
) -> list[NpsPoint]:
    rows = (
        _answers(kind=Question.Kind.NPS, start=start, end=end, survey_id=survey_id)
        .annotate(month=TruncMonth("response__submitted_at"))
        .values("month")
        .annotate(**_NPS_COUNTS)
        .order_by("month")
    )
    return [NpsPoint(**row) for row in rows]


@dataclass(frozen=True, slots=True)
class CsatSummary:
    responses: int
    average: Decimal | None  # 1.00 - 5.00
    distribution: dict[int, int]  # score -> count, 1..5 all present
    satisfied_percent: int | None  # share of 4 and 5, the usual "CSAT %"


def csat_summary(
    *, start: datetime | None = None, end: datetime | None = None, survey_id: int | None = None
) -> CsatSummary:
    answers = _answers(kind=Question.Kind.CSAT, start=start, end=end, survey_id=survey_id)
    counts = dict(answers.values_list("score").annotate(count=Count("pk")).order_by())
    average = answers.aggregate(average=Avg("score"))["average"]
    total = sum(counts.values())
    satisfied = counts.get(4, 0) + counts.get(5, 0)
    return CsatSummary(
        responses=total,
        average=Decimal(str(average)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if total else None,
        distribution={score: counts.get(score, 0) for score in range(1, 6)},
        satisfied_percent=(
            int((Decimal(100 * satisfied) / total).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if total else None
        ),
    )


@dataclass(frozen=True, slots=True)
class ChurnReason:
    code: str
    label_fr: str
    label_en: str
    count: int

    def label(self, language: str) -> str:
        return self.label_en if language == "en" and self.label_en else self.label_fr


def churn_reasons(
    *, start: datetime | None = None, end: datetime | None = None, survey_id: int | None = None
) -> list[ChurnReason]:
    """How often each answer of the cancellation surveys' choice questions was picked,
    most frequent first (choices with the same code across surveys are added up)."""
    choices = Choice.objects.filter(
        question__survey__trigger=Trigger.CANCELLATION,
        question__kind__in=(Question.Kind.SINGLE, Question.Kind.MULTIPLE),
    )
    answer_filter = Q()
    if start is not None:
        answer_filter &= Q(answers__response__submitted_at__gte=start)
    if end is not None:
        answer_filter &= Q(answers__response__submitted_at__lt=end)
    if survey_id is not None:
        choices = choices.filter(question__survey_id=survey_id)
    rows = (
        choices.values("code")
        .annotate(count=Count("answers", filter=answer_filter))
        .order_by("-count", "code")
        .values_list("code", "count")
    )
    labels = {choice.code: choice for choice in choices.order_by("-question__survey__position", "-pk")}
    return [
        ChurnReason(code=code, label_fr=labels[code].label_fr, label_en=labels[code].label_en, count=count)
        for code, count in rows
    ]


def responses_matching_text(*, queryset: QuerySet[SurveyResponse], text: str) -> QuerySet[SurveyResponse]:
    """Responses whose free-text answers match `text`: PostgreSQL full-text search (French
    and English stemming, websearch syntax: words, "a phrase", -excluded), plain
    case-insensitive containment elsewhere."""
    text = text.strip()
    if not text:
        return queryset
    if connection.vendor == "postgresql":
        # deferred: PostgreSQL only (the embedded default runs on SQLite)
        from django.contrib.postgres.search import SearchQuery, SearchVector

        matching: QuerySet[Answer] = Answer.objects.annotate(
            french=SearchVector("text", config="french"), english=SearchVector("text", config="english")
        ).filter(
            Q(french=SearchQuery(text, config="french", search_type="websearch"))
            | Q(english=SearchQuery(text, config="english", search_type="websearch"))
            | Q(text__icontains=text)
        )
    else:
        matching = Answer.objects.filter(text__icontains=text)
    return queryset.filter(pk__in=matching.values("response_id"))
