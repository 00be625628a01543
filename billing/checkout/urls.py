from django.urls import path

from billing.checkout import views

app_name = "checkout"

urlpatterns = [
    path("<str:public_id>/", views.session_page, name="session"),
    path("<str:public_id>/total/", views.session_total, name="total"),
    path("<str:public_id>/return/", views.session_return, name="return"),
    path("<str:public_id>/logo/", views.session_logo, name="logo"),
]
