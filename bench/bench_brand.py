"""The brand every invoicing benchmark issues under: French, with its own number series."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invoices.models import Brand


def bench_brand(*, slug: str, invoice_prefix: str, credit_note_prefix: str) -> Brand:
    """A new brand `<slug>-<tag>` whose series are `<prefix><tag>-{year}-{seq}` (unique per run)."""
    from invoices.models import Brand  # deferred: the benchmark sets Django up first

    tag = uuid.uuid4().hex[:8]
    return Brand.objects.create(
        slug=f"{slug}-{tag}",
        name=f"Bench {tag}",
        legal_name=f"Bench {tag} SAS",
        address_line1="1 rue du Banc",
        postal_code="75001",
        city="Paris",
        country="FR",
        siren="552100554",
        vat_number="FR03552100554",
        invoice_number_format=f"{invoice_prefix}{tag}-{{year}}-{{seq:06d}}",
        credit_note_number_format=f"{credit_note_prefix}{tag}-{{year}}-{{seq:06d}}",
    )
