from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/reports/", include("reports.api_urls")),
    path("accounts/", include("allauth.urls")),
    path("portal/", include("customers.urls", namespace="portal")),
    path("", RedirectView.as_view(pattern_name="portal:home", permanent=False)),
]
