"""A quote as a document: the invoice renderer's data shape, templates and PDF engine.

Built from the frozen snapshot of an issued quote (a draft computes one now and is
marked as such). Templates: brand-specific first, then the brand's layout, then the
classic layout (templates/quotes/document/), each extending the invoice layout it fits,
so the quote looks like the brand's invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.template.loader import select_template
from django.utils import translation
from django.utils.dateparse import parse_datetime

from billing.quotes.models import Quote
from invoices.rendering import formatting
from invoices.rendering.context import DEFAULT_BRANDING, DocumentData, DocumentLine
from invoices.rendering.html import LAYOUTS, _style_context, document_css, logo_data_uri
from invoices.services.documents import document_language
from invoices.vat import LEGAL_MENTIONS


@dataclass(frozen=True, slots=True)
class QuoteRow:
    label: str
    amount: str


def quote_document(
    quote: Quote, *, language: str | None = None, snapshot: dict[str, Any] | None = None
) -> DocumentData:
    """The quote as shown, from its frozen snapshot (a draft's: `quote_preview_snapshot`, passed in).

    `language`: the reader's (the public page's switch); default the customer's, frozen at issue."""
    snapshot = snapshot if snapshot is not None else quote.snapshot
    seller, buyer = snapshot.get("seller", {}), snapshot.get("buyer", {})
    language = document_language(language or snapshot.get("language"))
    currency = snapshot.get("currency") or quote.currency
    tz = seller.get("timezone") or "Europe/Paris"

    def money(amount: int) -> str:
        return formatting.money(int(amount), currency, language)

    lines = []
    for line in snapshot.get("lines", []):
        quantity = Decimal(line["quantity"])
        exclusive = line["amount"] - (line["tax_amount"] if line.get("tax_inclusive") else 0)
        unit = Decimal(exclusive) / quantity if quantity else Decimal(exclusive)
        lines.append(
            DocumentLine(
                description=line["description"],
                period=formatting.period(
                    _parse(line.get("period_start")), _parse(line.get("period_end")), timezone=tz, language=language
                ),
                quantity=formatting.quantity(quantity, language),
                unit_price=money(int(unit.to_integral_value())),
                tax_rate=formatting.rate(line["tax_rate"], language),
                amount=money(exclusive),
                discount=money(-line["discount_amount"]) if line.get("discount_amount") else "",
                extra=[],
            )
        )
    totals_in = snapshot.get("totals", {})
    totals: list[tuple[str, str, str]] = []
    if totals_in.get("discount_total"):
        totals.append(("subtotal", "subtotal", money(totals_in["total_excluding_tax"] + totals_in["discount_total"])))
        for discount in snapshot.get("discounts", []):
            if discount.get("amount"):
                totals.append(("discount", discount["label"], money(-int(discount["amount"]))))
    totals.append(("total_excluding_tax", "total_excluding_tax", money(totals_in.get("total_excluding_tax", 0))))
    totals.append(("tax", "tax", money(totals_in.get("tax_total", 0))))
    totals.append(("total", "total", money(totals_in.get("total", 0))))
    mentions = []
    key = snapshot.get("vat_mention_key")
    if key and key in LEGAL_MENTIONS:
        mentions.append(LEGAL_MENTIONS[key][language])
    memo = "\n\n".join(text for text in (snapshot.get("header", ""), snapshot.get("terms", "")) if text)
    return DocumentData(
        kind="quote",
        number=snapshot.get("number") or quote.number,
        language=language,
        currency=currency,
        issue_date=formatting.long_date(snapshot.get("issue_date"), language),
        due_date="",
        seller=seller,
        buyer=buyer,
        branding={**DEFAULT_BRANDING, **(seller.get("branding") or {})},
        custom_fields=[],
        line_columns=[],
        lines=lines,
        totals=totals,
        tax_rows=[
            {
                "category": group["category"],
                "rate": formatting.rate(group["rate"], language),
                "taxable": money(group["taxable_amount"]),
                "tax": money(group["tax_amount"]),
            }
            for group in snapshot.get("tax_breakdown", [])
        ],
        mentions=mentions,
        discounts=[],
        amount_due=money(totals_in.get("total", 0)),
        memo=memo,
        is_sample=quote.status == Quote.Status.DRAFT,
        extra={
            "valid_until": formatting.long_date(snapshot.get("valid_until"), language),
            "recurring_total": money(totals_in.get("recurring_total", 0)),
            "trial_days": snapshot.get("trial_days") or 0,
            "footer": snapshot.get("footer", ""),
            "revision": quote.revision,
        },
    )


def _parse(value: str | None) -> Any:
    return parse_datetime(value) if value else None


def quote_templates(document: DocumentData, *, brand_slug: str) -> list[str]:
    layout = document.branding.get("layout")
    names = [f"quotes/document/brands/{brand_slug}/quote.html"]
    if layout in LAYOUTS:
        names.append(f"quotes/document/layouts/{layout}.html")
    names.append("quotes/document/layouts/classic.html")
    return names


def quote_html(quote: Quote, *, for_pdf: bool, document: DocumentData | None = None) -> str:
    document = document or quote_document(quote)
    slug = quote.brand.slug
    context = {
        **_style_context(document, for_pdf=for_pdf),
        "doc": document,
        "quote": quote,
        "logo_src": logo_data_uri(document),
        "column_count": 5,
        "inline_css": "" if for_pdf else document_css(document, for_pdf=False, brand_slug=slug),
    }
    with translation.override(document.language):
        return select_template(quote_templates(document, brand_slug=slug)).render(context)


def quote_pdf(quote: Quote, *, language: str | None = None, snapshot: dict[str, Any] | None = None) -> bytes:
    """The quote as PDF, in the brand's design (a plain PDF: a quote is not an e-invoice)."""
    # deferred: imports WeasyPrint (about a second); only rendering a PDF loads it
    from invoices.rendering.pdf import html_to_pdf

    document = quote_document(quote, language=language if language in ("fr", "en") else None, snapshot=snapshot)
    html = quote_html(quote, for_pdf=True, document=document)
    return html_to_pdf(html, css=document_css(document, for_pdf=True, brand_slug=quote.brand.slug), pdf_a=False)


def quote_pdf_filename(quote: Quote) -> str:
    return f"{quote.number or f'draft-{quote.pk}'}.pdf"
