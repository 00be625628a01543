"""Brand texts in each document language (django-modeltranslation registration).

Each field gets `<field>_fr` and `<field>_en` columns. Documents never rely on the
active-language magic of the plain attribute: they read the column of the document's
language explicitly (`invoices.services.documents.brand_text`), so an English invoice
carries no French brand text.
"""

from modeltranslation.translator import TranslationOptions, register

from invoices.models import Brand, InvoiceCustomField, InvoiceLineColumn
from invoices.tax_models import TaxCode


@register(Brand)
class BrandTranslationOptions(TranslationOptions):
    fields = ("footer_text", "payment_instructions", "late_payment_rate")


@register(InvoiceCustomField)
class InvoiceCustomFieldTranslationOptions(TranslationOptions):
    fields = ("label",)  # the value (a PO number, a cost centre) is the same in every language


@register(InvoiceLineColumn)
class InvoiceLineColumnTranslationOptions(TranslationOptions):
    fields = ("label",)


@register(TaxCode)
class TaxCodeTranslationOptions(TranslationOptions):
    fields = ("exemption_reason",)  # printed on invoices and carried as BT-120: in the document's language
