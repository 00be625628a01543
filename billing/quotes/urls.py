from django.urls import path

from billing.quotes import views

app_name = "quotes"

urlpatterns = [
    path("<str:token>/", views.quote_page, name="accept"),
    path("<str:token>/pdf/", views.quote_pdf_download, name="pdf"),
]
