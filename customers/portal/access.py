"""Who the portal acts for, and what a request may do.

Every portal view goes through `portal_view`: a signed-in portal user (its second factor
verified when it enrolled TOTP) acts for its one customer; a staff member "viewing as"
a customer reads only (any POST is refused). `step_up=True` views also need a second
factor verified within TARIF_MFA_FRESH_MINUTES (config/mfa.py, shared with the console).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.plugins.otp_totp.models import TOTPDevice

from config import mfa
from customers.models import Customer
from customers.selectors import customer_for_user
from invoices.selectors import NoBrandConfigured, brand_for_customer

STEP_UP_SESSION_KEY = mfa.SESSION_KEY
IMPERSONATION_SESSION_KEY = "portal_view_as_customer"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Portal:
    customer: Customer
    brand: Any
    impersonating: bool


def totp_enrolled(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def step_up_fresh(request: HttpRequest) -> bool:
    return mfa.session_is_fresh(request)


def step_up_mark(request: HttpRequest) -> None:
    mfa.mark_fresh(request)


def safe_next(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
        return candidate
    return default


def _impersonated_customer(request: HttpRequest) -> Customer | None:
    customer_id = request.session.get(IMPERSONATION_SESSION_KEY)
    user = request.user
    if not customer_id or not (user.is_active and user.is_staff and mfa.is_verified(user)):
        return None
    return Customer.objects.select_related("brand").filter(pk=customer_id).first()


def portal_customer(request: HttpRequest) -> tuple[Customer, bool]:
    """(customer, impersonating) for this request; 404 for anyone without a customer."""
    impersonated = _impersonated_customer(request)
    if impersonated is not None:
        return impersonated, True
    return customer_for_user(user=request.user), False


def _with_next(url_name: str, request: HttpRequest) -> str:
    return f"{reverse(url_name)}?{urlencode({'next': request.get_full_path()})}"


def activate_customer_language(request: HttpRequest, customer: Customer) -> None:
    """The customer's preferred language unless the visitor picked one with the switch."""
    if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        translation.activate(customer.preferred_language)
        request.LANGUAGE_CODE = customer.preferred_language


def portal_view(view: Callable | None = None, *, step_up: bool = False) -> Callable:
    def decorator(function: Callable) -> Callable:
        @wraps(function)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            customer, impersonating = portal_customer(request)
            if not impersonating and totp_enrolled(request.user) and not request.user.is_verified():
                return HttpResponseRedirect(_with_next("portal:login_verify", request))
            activate_customer_language(request, customer)

            try:
                brand = brand_for_customer(customer=customer)
            except NoBrandConfigured:
                brand = None
            request.portal = Portal(customer=customer, brand=brand, impersonating=impersonating)
            if impersonating and request.method not in SAFE_METHODS:
                return render(request, "portal/read_only.html", status=403)
            if step_up and not impersonating and not step_up_fresh(request):
                target = _with_next("portal:verify", request)
                if getattr(request, "htmx", False):
                    return HttpResponse(status=204, headers={"HX-Redirect": target})
                return HttpResponseRedirect(target)
            return function(request, customer, *args, **kwargs)

        return wrapper

    if view is not None:
        return decorator(view)
    return decorator


def impersonation_target(request: HttpRequest) -> Customer:
    customer, impersonating = portal_customer(request)
    if not impersonating:
        raise Http404
    return customer
