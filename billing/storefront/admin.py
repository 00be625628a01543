"""Console: pricing tables and payment links (writes through billing.storefront.services).

Entries of a table and items of a link are edited as fixed slots on the table's or link's own
form (not inlines), so the one service call writes the row and its entries together.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from billing.models import Price
from billing.storefront.models import MAX_LINK_ITEMS, MAX_TABLE_ENTRIES, PaymentLink, PricingTable
from billing.storefront.selectors import payment_links_with_usage, price_display
from billing.storefront.services import (
    TABLE_FIELDS,
    LinkItemSpec,
    TableEntrySpec,
    payment_link_create,
    payment_link_items_validate,
    payment_link_update,
    payment_link_validate,
    pricing_table_create,
    pricing_table_entries_validate,
    pricing_table_set_active,
    pricing_table_update,
    pricing_table_validate,
)
from config.console import StyledAdmin, error_text, style_widgets
from config.modes import current_livemode, scope_to_mode
from config.write_path import copy_saved
from invoices.models import Brand

ENTRY_SLOT_FIELDS = ("monthly_price", "yearly_price", "features")
ITEM_SLOT_FIELDS = ("price", "quantity", "minimum", "maximum")


def _mode() -> bool:
    mode = current_livemode()
    return True if mode is None else mode


def _price_choices(*, recurring: bool | None) -> QuerySet[Price]:
    prices = Price.objects.filter(active=True, product__active=True, usage_type=Price.UsageType.LICENSED)
    if recurring is True:
        prices = prices.filter(type=Price.Type.RECURRING)
    return scope_to_mode(prices, livemode=_mode()).select_related("product").order_by("product__name", "pk")


class PriceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, price: Price) -> str:
        name = price.product.name + (f" – {price.nickname}" if price.nickname else "")
        return f"{name}: {price_display(price).text}"


def public_url(path: str) -> str:
    return settings.TARIF_BASE_URL.rstrip("/") + path


def _copyable(text: str) -> str:
    return format_html('<pre class="tarif-json" tabindex="0">{}</pre>', text)


def embed_snippet(table: PricingTable) -> str:
    script = public_url(reverse("storefront:pricing_embed_script", args=[table.public_id]))
    return (
        f'<script src="{script}" async></script>\n'
        f'<tarif-pricing-table data-id="{table.public_id}"></tarif-pricing-table>'
    )


class RefusalMixin:
    """A service refusal after the form's own check passed (the row changed meanwhile): say why, show the page."""

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except ValidationError as error:
            self.message_user(request, error_text(error), messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        if obj is None and "brand" in form_class.base_fields:
            form_class.base_fields["brand"].initial = default_brand()
        return form_class


# -- pricing tables ------------------------------------------------------------------------------


class PricingTableForm(forms.ModelForm):
    highlighted_entry = forms.TypedChoiceField(
        label=_("highlighted product"), required=False, coerce=int, empty_value=None
    )

    class Meta:
        model = PricingTable
        fields = (
            "name",
            "brand",
            "active",
            "button_label",
            "trial_period_days",
            "allow_promotion_codes",
            "success_url",
            "cancel_url",
            "embed_origins",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["highlighted_entry"].choices = [("", _("none"))] + [
            (str(slot), _("Product %(number)d") % {"number": slot}) for slot in range(1, MAX_TABLE_ENTRIES + 1)
        ]
        entries = list(self.instance.entries.order_by("position")) if self.instance.pk else []
        for slot in range(1, MAX_TABLE_ENTRIES + 1):
            number = {"number": slot}  # labels here: translated per request
            for name in ("monthly_price", "yearly_price"):
                self.fields[f"entry_{slot}_{name}"].queryset = _price_choices(recurring=True)
            self.fields[f"entry_{slot}_monthly_price"].label = gettext("Product %(number)d: monthly price") % number
            self.fields[f"entry_{slot}_yearly_price"].label = gettext("Product %(number)d: yearly price") % number
            self.fields[f"entry_{slot}_features"].label = (
                gettext("Product %(number)d: features (one per line)") % number
            )
            entry = entries[slot - 1] if slot <= len(entries) else None
            if entry is not None:
                self.fields[f"entry_{slot}_monthly_price"].initial = entry.monthly_price_id
                self.fields[f"entry_{slot}_yearly_price"].initial = entry.yearly_price_id
                self.fields[f"entry_{slot}_features"].initial = "\n".join(entry.features)
                if entry.highlighted:
                    self.fields["highlighted_entry"].initial = str(slot)
        style_widgets(self)

    def entry_specs(self) -> list[TableEntrySpec]:
        data = self.cleaned_data
        specs = []
        for slot in range(1, MAX_TABLE_ENTRIES + 1):
            monthly, yearly = data.get(f"entry_{slot}_monthly_price"), data.get(f"entry_{slot}_yearly_price")
            features = tuple(line for line in (data.get(f"entry_{slot}_features") or "").splitlines() if line.strip())
            if monthly is None and yearly is None:
                continue
            specs.append(
                TableEntrySpec(
                    monthly_price=monthly,
                    yearly_price=yearly,
                    features=features,
                    highlighted=data.get("highlighted_entry") == slot,
                )
            )
        return specs

    def entries_changed(self) -> bool:
        return any(name.startswith("entry_") or name == "highlighted_entry" for name in self.changed_data)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        livemode = self.instance.livemode if self.instance.pk else _mode()
        try:
            pricing_table_validate(changes=cleaned)
            if not self.instance.pk or self.entries_changed():
                pricing_table_entries_validate(livemode=livemode, entries=self.entry_specs())
        except ValidationError as error:
            self.add_error(None, error_text(error))
        return cleaned


def _declare_entry_slots() -> None:
    """The entry slots are form fields of their own (not model fields): declared once, here."""
    for slot in range(1, MAX_TABLE_ENTRIES + 1):
        slots = {
            f"entry_{slot}_monthly_price": PriceChoiceField(queryset=Price.objects.none(), required=False),
            f"entry_{slot}_yearly_price": PriceChoiceField(queryset=Price.objects.none(), required=False),
            f"entry_{slot}_features": forms.CharField(
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text=_("Shown when the product grants no entitlement features."),
            ),
        }
        PricingTableForm.base_fields.update(slots)
        PricingTableForm.declared_fields.update(slots)


_declare_entry_slots()


@admin.register(PricingTable)
class PricingTableAdmin(RefusalMixin, StyledAdmin):
    form = PricingTableForm
    list_display = ("name", "brand", "entry_count", "public_link", "active", "created_at")
    list_filter = ("active", "brand")
    search_fields = ("name", "public_id")
    readonly_fields = ("public_id", "public_page", "embed_code", "created_at", "updated_at")
    actions = ("deactivate", "reactivate")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        entries: list[str] = ["highlighted_entry"]
        for slot in range(1, MAX_TABLE_ENTRIES + 1):
            entries += [f"entry_{slot}_{name}" for name in ENTRY_SLOT_FIELDS]
        sets = [
            (None, {"fields": ("name", "brand", "active")}),
            (_("Products"), {"fields": entries}),
            (
                _("Checkout"),
                {
                    "fields": (
                        "button_label",
                        "trial_period_days",
                        "allow_promotion_codes",
                        "success_url",
                        "cancel_url",
                    )
                },
            ),
            (_("Embedding"), {"fields": ("embed_origins",)}),
        ]
        if obj is not None:
            sets.insert(1, (_("Share"), {"fields": ("public_id", "public_page", "embed_code")}))
        return sets

    def get_queryset(self, request: HttpRequest) -> QuerySet[PricingTable]:
        return super().get_queryset(request).select_related("brand").prefetch_related("entries")

    @admin.display(description=_("products"))
    def entry_count(self, table: PricingTable) -> int:
        return len(table.entries.all())

    @admin.display(description=_("public page"))
    def public_link(self, table: PricingTable) -> str:
        url = reverse("storefront:pricing", args=[table.public_id])
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, table.public_id)

    @admin.display(description=_("public page URL"))
    def public_page(self, table: PricingTable) -> str:
        return _copyable(public_url(reverse("storefront:pricing", args=[table.public_id])))

    @admin.display(description=_("embed code"))
    def embed_code(self, table: PricingTable) -> str:
        help_text = _("Paste it where the table goes; add your site to “Sites allowed to embed”.")
        return format_html("{}<p>{}</p>", _copyable(embed_snippet(table)), help_text)

    def save_model(self, request: HttpRequest, obj: PricingTable, form: Any, change: bool) -> None:
        cleaned = form.cleaned_data
        names = set(TABLE_FIELDS) & set(cleaned)
        try:
            if change:
                stored = PricingTable.objects.get(pk=obj.pk)
                changes = {name: cleaned[name] for name in form.changed_data if name in names}
                entries = form.entry_specs() if form.entries_changed() else None
                if "brand" in form.changed_data:
                    raise ValidationError(_("The brand of a published table cannot change: create a new table."))
                saved = pricing_table_update(table=stored, changes=changes, entries=entries, acting_user=request.user)
            else:
                saved = pricing_table_create(
                    brand=cleaned.get("brand"),
                    livemode=_mode(),
                    entries=form.entry_specs(),
                    acting_user=request.user,
                    **{name: cleaned[name] for name in names if name != "active"},
                )
        except ValidationError as error:
            raise ValidationError(error_text(error)) from error
        copy_saved(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Entries went to the service with the table."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: the page may be embedded on a live site

    def _set_active(self, request: HttpRequest, queryset: QuerySet[PricingTable], active: bool) -> None:
        count = 0
        for table in queryset.filter(active=not active):
            pricing_table_set_active(table=table, active=active, acting_user=request.user)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d pricing table changed.", "%(count)d pricing tables changed.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected pricing tables"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[PricingTable]) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description=_("Reactivate selected pricing tables"), permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[PricingTable]) -> None:
        self._set_active(request, queryset, True)


# -- payment links -------------------------------------------------------------------------------


class PaymentLinkForm(forms.ModelForm):
    class Meta:
        model = PaymentLink
        fields = (
            "name",
            "brand",
            "mode",
            "active",
            "trial_period_days",
            "allow_promotion_codes",
            "after_completion_url",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for slot in range(1, MAX_LINK_ITEMS + 1):
            if f"item_{slot}_price" not in self.fields:
                continue
            number = {"number": slot}
            self.fields[f"item_{slot}_price"].queryset = _price_choices(recurring=None)
            self.fields[f"item_{slot}_price"].label = gettext("Price %(number)d") % number
            self.fields[f"item_{slot}_quantity"].label = gettext("Quantity %(number)d") % number
            self.fields[f"item_{slot}_minimum"].label = gettext("Price %(number)d: minimum quantity") % number
            self.fields[f"item_{slot}_maximum"].label = gettext("Price %(number)d: maximum quantity") % number
        style_widgets(self)

    def item_specs(self) -> list[LinkItemSpec]:
        data = self.cleaned_data
        specs = []
        for slot in range(1, MAX_LINK_ITEMS + 1):
            price = data.get(f"item_{slot}_price")
            if price is None:
                continue
            specs.append(
                LinkItemSpec(
                    price=price,
                    quantity=data.get(f"item_{slot}_quantity") or 1,
                    adjustable_minimum=data.get(f"item_{slot}_minimum"),
                    adjustable_maximum=data.get(f"item_{slot}_maximum"),
                )
            )
        return specs

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        mode = cleaned.get("mode") or self.instance.mode
        try:
            payment_link_validate(mode=mode, changes=cleaned)
            if not self.instance.pk:
                payment_link_items_validate(livemode=_mode(), mode=mode, items=self.item_specs())
        except ValidationError as error:
            self.add_error(None, error_text(error))
        return cleaned


def _declare_item_slots() -> None:
    for slot in range(1, MAX_LINK_ITEMS + 1):
        slots = {
            f"item_{slot}_price": PriceChoiceField(queryset=Price.objects.none(), required=slot == 1),
            f"item_{slot}_quantity": forms.IntegerField(min_value=1, initial=1, required=False),
            f"item_{slot}_minimum": forms.IntegerField(
                min_value=1,
                required=False,
                help_text=_("With a maximum: the buyer chooses the quantity."),
            ),
            f"item_{slot}_maximum": forms.IntegerField(min_value=1, required=False),
        }
        PaymentLinkForm.base_fields.update(slots)
        PaymentLinkForm.declared_fields.update(slots)


_declare_item_slots()


@admin.register(PaymentLink)
class PaymentLinkAdmin(RefusalMixin, StyledAdmin):
    form = PaymentLinkForm
    list_display = ("name", "brand", "mode", "items_summary", "usage", "public_link", "active", "created_at")
    list_filter = ("active", "mode", "brand")
    search_fields = ("name", "public_id")
    readonly_fields = ("public_id", "public_page", "items_summary", "usage", "created_at", "updated_at")
    actions = ("deactivate", "reactivate")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            items: list[str] = []
            for slot in range(1, MAX_LINK_ITEMS + 1):
                items += [f"item_{slot}_{name}" for name in ITEM_SLOT_FIELDS]
            return [
                (None, {"fields": ("name", "brand", "mode")}),
                (_("Prices"), {"fields": items}),
                (_("Checkout"), {"fields": ("trial_period_days", "allow_promotion_codes", "after_completion_url")}),
            ]
        return [
            (None, {"fields": ("name", "brand", "mode", "active")}),
            (_("Share"), {"fields": ("public_id", "public_page", "usage")}),
            (_("Prices"), {"fields": ("items_summary",)}),
            (_("Checkout"), {"fields": ("trial_period_days", "allow_promotion_codes", "after_completion_url")}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly + ("brand", "mode") if obj is not None else readonly

    def get_queryset(self, request: HttpRequest) -> QuerySet[PaymentLink]:
        queryset = super().get_queryset(request).select_related("brand").prefetch_related("items__price__product")
        return payment_links_with_usage(queryset)

    @admin.display(description=_("completed purchases"), ordering="usage_count")
    def usage(self, link: PaymentLink) -> int:
        return getattr(link, "usage_count", 0)

    @admin.display(description=_("prices"))
    def items_summary(self, link: PaymentLink) -> str:
        return format_html_join(
            "",
            "<div>{} × {}</div>",
            (
                (item.quantity, f"{item.price.product.name}: {price_display(item.price).text}")
                for item in link.items.all()
            ),
        )

    @admin.display(description=_("public page"))
    def public_link(self, link: PaymentLink) -> str:
        url = reverse("storefront:buy", args=[link.public_id])
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, link.public_id)

    @admin.display(description=_("URL to share"))
    def public_page(self, link: PaymentLink) -> str:
        return _copyable(public_url(reverse("storefront:buy", args=[link.public_id])))

    def save_model(self, request: HttpRequest, obj: PaymentLink, form: Any, change: bool) -> None:
        cleaned = form.cleaned_data
        try:
            if change:
                stored = PaymentLink.objects.get(pk=obj.pk)
                editable = {"name", "trial_period_days", "allow_promotion_codes", "after_completion_url", "active"}
                changes = {name: cleaned[name] for name in form.changed_data if name in editable}
                saved = (
                    payment_link_update(link=stored, changes=changes, acting_user=request.user) if changes else stored
                )
            else:
                saved = payment_link_create(
                    brand=cleaned.get("brand"),
                    livemode=_mode(),
                    name=cleaned["name"],
                    mode=cleaned["mode"],
                    items=form.item_specs(),
                    trial_period_days=cleaned.get("trial_period_days"),
                    allow_promotion_codes=cleaned.get("allow_promotion_codes", False),
                    after_completion_url=cleaned.get("after_completion_url", ""),
                    acting_user=request.user,
                )
        except ValidationError as error:
            raise ValidationError(error_text(error)) from error
        copy_saved(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Items went to the service with the link."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: the URL may already be shared

    def _set_active(self, request: HttpRequest, queryset: QuerySet[PaymentLink], active: bool) -> None:
        count = 0
        for link in queryset.filter(active=not active):
            payment_link_update(link=link, changes={"active": active}, acting_user=request.user)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d payment link changed.", "%(count)d payment links changed.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected payment links"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[PaymentLink]) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description=_("Reactivate selected payment links"), permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[PaymentLink]) -> None:
        self._set_active(request, queryset, True)


def default_brand() -> Brand | None:
    return Brand.objects.filter(is_default=True).first()
