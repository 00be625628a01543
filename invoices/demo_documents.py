"""Demo data of issue 17 item 6: the demo brand's printed texts in French and English."""

from __future__ import annotations

from invoices.models import Brand

DEMO_TEXTS = {
    "footer_text_fr": "Atelier Nuage SAS · logiciel de planification pour artisans",
    "footer_text_en": "Atelier Nuage SAS · scheduling software for craftspeople",
    "payment_instructions_fr": "Virement sur le compte ci-dessous en rappelant la référence.",
    "payment_instructions_en": "Bank transfer to the account below, quoting the reference.",
    "late_payment_rate_fr": "3 × le taux d'intérêt légal",
    "late_payment_rate_en": "3 × the French legal interest rate",
}


def demo_brand_texts(*, brand: Brand) -> None:
    """Fill the demo brand's texts that are still empty (a rerun keeps staff edits).

    Seed data, like the rest of seed_demo: written directly, not through `brand_save`
    (which asks staff for a fresh second factor before payment instructions change)."""
    stored = Brand.objects.filter(pk=brand.pk).values(*DEMO_TEXTS).get()
    # A new brand's English late-payment column holds the model's (French) default: not a translation.
    untranslated = {"", None, DEMO_TEXTS["late_payment_rate_fr"]}
    missing = {
        field: text
        for field, text in DEMO_TEXTS.items()
        if stored[field] in untranslated and stored[field] != text and (field.endswith("_en") or not stored[field])
    }
    if missing:
        Brand.objects.filter(pk=brand.pk).update(**missing)
