"""Public storefront URLs (namespace `storefront`), included at the site's root."""

from django.urls import path

from billing.storefront import views

app_name = "storefront"

urlpatterns = [
    path("pricing/<str:public_id>/", views.pricing_table_page, name="pricing"),
    path("pricing/<str:public_id>/start/", views.pricing_table_start, name="pricing_start"),
    path("pricing/<str:public_id>/embed", views.pricing_table_embed, name="pricing_embed"),
    path("pricing/<str:public_id>/embed/start/", views.pricing_table_embed_start, name="pricing_embed_start"),
    path("pricing/<str:public_id>/embed.js", views.pricing_table_embed_script, name="pricing_embed_script"),
    path("buy/<str:public_id>/", views.payment_link_page, name="buy"),
    path("storefront/brand/<slug:slug>/logo", views.brand_logo, name="brand_logo"),
    path("storefront/thanks/", views.thanks, name="thanks"),
]
