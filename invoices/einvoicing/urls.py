from django.urls import path

from invoices.einvoicing import views

app_name = "einvoicing"

urlpatterns = [
    path("webhook/<int:account_id>/", views.status_webhook, name="status_webhook"),
]
