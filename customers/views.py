from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from customers.selectors import customer_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    customer = customer_for_user(user=request.user)
    return render(request, "portal/home.html", {"customer": customer})
