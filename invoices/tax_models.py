"""Tax codes (issue 16, item 11): what kind of supply a product is, for VAT.

A `TaxCode` is data, not code: the seeded ones (migration 0008) cover the EU rate levels
(standard, intermediate, reduced, super-reduced), zero-rated, exempt (with its VATEX code)
and out of scope; an operator adds more (say "ebooks") in the console. Each code maps per
country to a rate (`TaxCodeRate`). Which code applies to an invoice line: the price's,
else its product's, else the brand's default, else the standard code. Which rate:
`invoices.vat.decide_vat` (the place-of-supply rules stay above the codes).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

STANDARD_TAX_CODE = "standard"


class TaxCode(models.Model):
    """A kind of supply with its VAT treatment. Global data: not per mode (live/test share it)."""

    class Category(models.TextChoices):
        STANDARD = "standard", _("standard rate")
        INTERMEDIATE = "intermediate", _("intermediate (parking) rate")
        REDUCED = "reduced", _("reduced rate")
        SUPER_REDUCED = "super_reduced", _("super-reduced rate")
        ZERO_RATED = "zero_rated", _("zero-rated")
        EXEMPT = "exempt", _("exempt")
        OUT_OF_SCOPE = "out_of_scope", _("outside the scope of VAT")

    code = models.SlugField(_("code"), max_length=50, unique=True, help_text=_("e.g. reduced, exempt-training"))
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    exemption_reason_code = models.CharField(
        _("exemption reason code (VATEX)"),
        max_length=30,
        blank=True,
        help_text=_("EN 16931 BT-121, e.g. VATEX-EU-132-1I. Exempt and out-of-scope codes only."),
    )
    exemption_reason = models.CharField(
        _("exemption reason"),
        max_length=300,
        blank=True,
        help_text=_("Printed on invoices (EN 16931 BT-120), e.g. the article of law that exempts the supply."),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("tax code")
        verbose_name_plural = _("tax codes")
        ordering = ["code"]
        constraints = [
            # BR-E-10: an exempt supply carries its reason (code or text).
            models.CheckConstraint(
                condition=~Q(category="exempt") | ~Q(exemption_reason_code="") | ~Q(exemption_reason=""),
                name="tax_code_exempt_has_reason",
            ),
            # BR-S-10 / BR-Z-10: taxed and zero-rated supplies carry no exemption reason.
            models.CheckConstraint(
                condition=Q(category__in=["exempt", "out_of_scope"]) | Q(exemption_reason_code="", exemption_reason=""),
                name="tax_code_reason_only_when_exempt",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class TaxCodeRate(models.Model):
    """The rate of a tax code in one country (percent). Standard codes fall back to the
    country's standard `TaxRate`; a reduced code without a row for a country is charged at
    that country's standard rate (the member state has no reduced rate for it)."""

    tax_code = models.ForeignKey(TaxCode, on_delete=models.CASCADE, related_name="rates", verbose_name=_("tax code"))
    country = CountryField(_("country"))
    percentage = models.DecimalField(
        _("percentage"),
        max_digits=6,
        decimal_places=3,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )

    class Meta:
        verbose_name = _("tax code rate")
        verbose_name_plural = _("tax code rates")
        ordering = ["tax_code", "country"]
        constraints = [
            models.UniqueConstraint(fields=["tax_code", "country"], name="tax_code_rate_one_per_country"),
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100), name="tax_code_rate_percentage_bounds"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tax_code.code} {self.country} {self.percentage}%"
