"""The operator console: the Django admin, served only after password + TOTP.

Flow: the admin's own password login (throttled by django-axes), then
- a staff user with a confirmed device is sent to `otp/verify/` (TOTP or a recovery code);
- a staff user without one is sent to `otp/enrol/` (QR code, confirm a code, get recovery codes).
Only a session verified by django-otp passes `has_permission`.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteMixin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import user_has_device
from unfold.sites import UnfoldAdminSite
from unfold.widgets import UnfoldAdminTextInputWidget

from config import mfa
from config.console import StyledAdmin
from config.mfa import issue_recovery_codes, second_factor_login
from config.modes import is_mode_scoped, livemode_scope, scope_to_mode

# `issue_recovery_codes` and `is_verified` stay importable from here (seed_demo, tests).
__all__ = ["TarifAdminSite", "console_livemode", "is_verified", "issue_recovery_codes"]
# The console's "Test data" switch: a session flag; while on, staff see and change test-mode objects only.
TEST_DATA_SESSION_KEY = "tarif_test_data"


def console_livemode(request: HttpRequest) -> bool:
    """The mode the staff member is looking at: live unless the "Test data" switch is on."""
    session = getattr(request, "session", None)
    return not (session is not None and session.get(TEST_DATA_SESSION_KEY, False))


def _scope_model_admin(model_admin: admin.ModelAdmin) -> None:
    """Changelists, change forms, deletes and autocompletes of a mode-carrying model see the
    console's current mode only (another mode's object is "not found")."""
    original = model_admin.get_queryset

    def get_queryset(request: HttpRequest) -> Any:
        return scope_to_mode(original(request), livemode=console_livemode(request))

    model_admin.get_queryset = get_queryset  # type: ignore[method-assign]


def _scope_model_admin_choices(model_admin: admin.ModelAdmin) -> None:
    """Select boxes of a console form offer the current mode's objects only (a test price
    for a test product, a test customer's coupon...)."""
    for hook in ("formfield_for_foreignkey", "formfield_for_manytomany"):
        original = getattr(model_admin, hook)

        def scoped(db_field: Any, request: HttpRequest, _original: Any = original, **kwargs: Any) -> Any:
            field = _original(db_field, request, **kwargs)
            queryset = getattr(field, "queryset", None)
            if queryset is not None and is_mode_scoped(queryset.model):
                field.queryset = scope_to_mode(queryset, livemode=console_livemode(request))
            return field

        setattr(model_admin, hook, scoped)


def method_decorator_never_cache(view: Any) -> Any:
    return method_decorator(never_cache)(method_decorator(csrf_protect)(view))


class TokenForm(forms.Form):
    otp_token = forms.CharField(
        label=_("Verification code"),
        max_length=16,
        widget=UnfoldAdminTextInputWidget(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "numeric"}
        ),
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
    )


# Third-party models the console shows but never edits: dj-stripe mirrors Stripe (synced);
# Celery beat's schedules are declared in code (config/celery.py). Their add forms failed on
# hostile input (a NUL byte in an id, `KeyError: 'human_readable'` in the crontab form).
READ_ONLY_APPS = frozenset({"djstripe", "django_celery_beat"})

# Plumbing: tables no job in the console needs (scheduler internals, Stripe mirrors, login
# throttling, second-factor devices, event cursors). Only superusers
# see or open them, whatever permissions a role group holds (Finance views beat schedules for
# the operations page's figures, not to browse them here).
PLUMBING_APPS = frozenset(
    {"django_celery_beat", "djstripe", "axes", "otp_totp", "otp_static", "otp_email", "account", "auth"}
)
# The notification log is not plumbing: it is the list of emails sent to customers, which
# finance opens from the customer hub's timeline.
PLUMBING_MODELS = frozenset({"events.eventcursor"})
# Staff management stays with those Django lets manage users (superusers, in practice).
NOT_PLUMBING_MODELS = frozenset({"auth.user"})


def is_plumbing(model: type[models.Model]) -> bool:
    label = model._meta.label_lower
    if label in NOT_PLUMBING_MODELS:
        return False
    return model._meta.app_label in PLUMBING_APPS or label in PLUMBING_MODELS


class TarifAdminSite(UnfoldAdminSite):
    site_header = _("Tarif operator console")
    site_title = _("Tarif")
    index_title = _("Billing operations")
    enable_nav_sidebar = True

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and _is_verified(user))

    # -- live / test mode -----------------------------------------------------------------

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        models = [model_or_iterable] if isinstance(model_or_iterable, type) else list(model_or_iterable)
        if any(model._meta.app_label in READ_ONLY_APPS for model in models):
            base = admin_class or StyledAdmin
            admin_class = type(base.__name__, (ReadOnlyMirrorAdmin, base), {})
        if any(is_plumbing(model) for model in models):
            base = admin_class or StyledAdmin
            admin_class = type(base.__name__, (SuperuserOnlyAdmin, base), {})
        super().register(model_or_iterable, admin_class, **options)
        for model in models:
            _scope_model_admin_choices(self._registry[model])
            if is_mode_scoped(model):
                _scope_model_admin(self._registry[model])

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def in_console_mode(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            # Services called from the console (creating a customer, a product...) take its mode.
            with livemode_scope(console_livemode(request)):
                return inner(request, *args, **kwargs)

        return in_console_mode

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["test_data"] = not console_livemode(request)
        # The header's language switch (unfold's language_form.html) posts `next` from here:
        # back to the very page, not to the Referer (which a privacy setting may drop).
        context["redirect_to"] = request.get_full_path()
        if self.has_permission(request):
            context["test_data_url"] = reverse("admin:test_data", current_app=self.name)
        return context

    def search(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The command palette's search (Ctrl/⌘-K, the sidebar box). Unfold caches results per
        user and term for five minutes: that would show live objects after switching to test
        data, or an invoice still listed after a permission was withdrawn. Here nothing is
        cached (a handful of indexed queries), and the term is looked up in the current mode."""
        term = (request.GET.get("s") or "").strip()
        if not term:
            return HttpResponse()
        results: list[Any] = self._search_apps(super().get_app_list(request), term.lower())
        if "extended" in request.GET:
            callback = self._get_config("COMMAND", request).get("search_callback")
            if callback:
                results.extend(self._get_value(callback, request, term))
        paginator = Paginator(results, 100)
        page_number = request.GET.get("page", "1")
        page = paginator.get_page(page_number)
        template = (
            "unfold/helpers/command_results.html" if "extended" in request.GET else "unfold/helpers/search_results.html"
        )
        return TemplateResponse(
            request,
            template=template,
            context={
                "page_obj": paginator,
                "results": page,
                "page_counter": (page.number - 1) * 100,
                "execution_time": 0,
                "command_show_history": False,
            },
            headers={"HX-Trigger": "search"},
        )

    def test_data_view(self, request: HttpRequest) -> HttpResponse:
        """The "Test data" switch (POST test_data=on/off), back to `next` (or the index)."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        request.session[TEST_DATA_SESSION_KEY] = request.POST.get("test_data") == "on"
        candidate = request.POST.get("next", "")
        if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
            # A change page of the other mode's object would be "not found": go to its list instead.
            target = candidate.split("?")[0]
            if target.rstrip("/").endswith("/change"):
                target = target.rstrip("/").rsplit("/", 2)[0] + "/"
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(reverse("admin:index", current_app=self.name))

    def _password_ok_but_unverified(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.is_staff and not _is_verified(user))

    def _next_url(self, request: HttpRequest) -> str:
        candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
        if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
            return candidate
        return reverse("admin:index", current_app=self.name)

    def _with_next(self, url_name: str, request: HttpRequest) -> str:
        url = reverse(url_name, current_app=self.name)
        next_url = request.GET.get(REDIRECT_FIELD_NAME)
        if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            url = f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}"
        return url

    @method_decorator_never_cache
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self._password_ok_but_unverified(request):
            if user_has_device(request.user, confirmed=True):
                return HttpResponseRedirect(self._with_next("admin:otp_verify", request))
            return HttpResponseRedirect(self._with_next("admin:otp_enrol", request))
        response = super().login(request, extra_context)
        if request.method == "POST" and self._password_ok_but_unverified(request):
            # The password step passed: go on to the second factor, keeping `next`.
            step = "admin:otp_verify" if user_has_device(request.user, confirmed=True) else "admin:otp_enrol"
            url = reverse(step, current_app=self.name)
            # unfold's sign-in form carries `next` in its action's query string, not in a field.
            next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
            if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
                url = f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}"
            return HttpResponseRedirect(url)
        return response

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path("otp/verify/", self.otp_verify_view, name="otp_verify"),
            path("otp/enrol/", self.otp_enrol_view, name="otp_enrol"),
            path("test-data/", self.admin_view(self.test_data_view), name="test_data"),
        ]
        return urls + super().get_urls()

    def _otp_context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {**self.each_context(request), "next": self._next_url(request), **extra}

    @method_decorator_never_cache
    def otp_verify_view(self, request: HttpRequest) -> HttpResponse:
        if not self._password_ok_but_unverified(request):
            return HttpResponseRedirect(reverse("admin:login", current_app=self.name))
        if not user_has_device(request.user, confirmed=True):
            return HttpResponseRedirect(self._with_next("admin:otp_enrol", request))
        form = TokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            verification = mfa.verify_code(user=request.user, token=form.cleaned_data["otp_token"])
            if verification.device is not None:
                second_factor_login(request, verification.device)
                return HttpResponseRedirect(self._next_url(request))
            form.add_error(
                "otp_token",
                mfa.refusal_message(
                    verification, _("Invalid or already used code. Wait for the next code and try again.")
                ),
            )
        context = self._otp_context(request, form=form, title=_("Two-factor verification"))
        return render(request, "admin/otp/verify.html", context)

    @method_decorator_never_cache
    def otp_enrol_view(self, request: HttpRequest) -> HttpResponse:
        if not self._password_ok_but_unverified(request):
            return HttpResponseRedirect(reverse("admin:login", current_app=self.name))
        if user_has_device(request.user, confirmed=True):
            return HttpResponseRedirect(self._with_next("admin:otp_verify", request))
        device = mfa.totp_device_for_enrolment(request.user)
        form = TokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            verification = mfa.confirm_device(user=request.user, device=device, token=form.cleaned_data["otp_token"])
            if verification.ok:
                codes = issue_recovery_codes(user=request.user)
                second_factor_login(request, device)
                context = self._otp_context(request, codes=codes, title=_("Save your recovery codes"))
                return render(request, "admin/otp/recovery_codes.html", context)
            form.add_error(
                "otp_token",
                mfa.refusal_message(
                    verification, _("That code does not match. Check your device's clock and try again.")
                ),
            )
        context = self._otp_context(
            request,
            form=form,
            title=_("Set up two-factor authentication"),
            qr_svg=mark_safe(mfa.qr_svg(device.config_url)),  # generated by qrcode from our own data
            secret=mfa.base32_secret(device),
            config_url=device.config_url,
        )
        return render(request, "admin/otp/enrol.html", context)


_is_verified = mfa.is_verified
# Public name kept for the portal's "view as customer" check.
is_verified = mfa.is_verified


def harden_autocomplete_widgets() -> None:
    """The admin's autocomplete widgets re-render a refused form by querying its submitted
    values as primary keys: a posted `'; DROP TABLE…` for a customer id was a ValueError,
    a 500 (Django's AutocompleteMixin.optgroups converts nothing). Values the target field
    cannot read are dropped before the query; the form's own error still tells the user."""
    if getattr(AutocompleteMixin.optgroups, "tarif_hardened", False):
        return
    original = AutocompleteMixin.optgroups

    def optgroups(self: Any, name: str, value: Any, attr: Any = None) -> Any:
        remote_opts = self.field.remote_field.model._meta
        to_field = remote_opts.get_field(getattr(self.field.remote_field, "field_name", remote_opts.pk.attname))
        readable = []
        for item in value:
            if "\x00" in str(item):
                continue
            try:
                to_field.to_python(item)
            except (ValidationError, ValueError, TypeError):
                continue
            readable.append(item)
        return original(self, name, readable, attr)

    optgroups.tarif_hardened = True  # type: ignore[attr-defined]
    AutocompleteMixin.optgroups = optgroups  # type: ignore[method-assign]


class SuperuserOnlyAdmin:
    """Plumbing (`is_plumbing`): hidden from the app list and the search, 403 on every page
    for anyone but a superuser, whatever the role group grants."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser) and super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser) and super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_superuser) and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser) and super().has_delete_permission(request, obj)  # type: ignore[misc]


class ReadOnlyMirrorAdmin:
    """dj-stripe's models mirror Stripe (synced, never typed in): the console shows them
    read-only. Its add forms were reachable and failed (a NUL byte in an id, a missing
    `djstripe` URL namespace): 500s, and a way to forge payment records by hand."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def harden_json_form_fields() -> None:
    """Forms for a model's JSONField (metadata...): an empty or `null` input for a NOT NULL
    column was saved as NULL (Django skips blank values in full_clean): an IntegrityError,
    a 500; a `\\u0000` inside the JSON is refused by PostgreSQL's jsonb: a DataError. Here the
    column's default stands in for an empty input on a NOT NULL column, and NUL characters
    are a form error."""
    if getattr(models.JSONField.formfield, "tarif_hardened", False):
        return
    original = models.JSONField.formfield

    def formfield(self: Any, **kwargs: Any) -> Any:
        model_field = self

        class SafeJSONField(kwargs.get("form_class") or forms.JSONField):
            def to_python(self, value: Any) -> Any:
                result = super().to_python(value)
                if result is None and not model_field.null:
                    return model_field.get_default()
                if _contains_nul(result):
                    raise ValidationError(_("Text cannot contain NUL characters."), code="null_characters")
                return result

        kwargs["form_class"] = SafeJSONField
        return original(self, **kwargs)

    formfield.tarif_hardened = True  # type: ignore[attr-defined]
    models.JSONField.formfield = formfield  # type: ignore[method-assign]
