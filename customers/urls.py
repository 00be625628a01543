from django.urls import path

from customers.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("brand/logo/", views.brand_logo, name="brand_logo"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("credits/", views.credits, name="credits"),
    path("usage/", views.usage, name="usage"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:pk>/factur-x/", views.invoice_facturx, name="invoice_facturx"),
    path("invoices/<int:pk>/pay/", views.invoice_pay, name="invoice_pay"),
    path("credit-notes/<int:pk>/pdf/", views.credit_note_pdf, name="credit_note_pdf"),
    path("credit-notes/<int:pk>/factur-x/", views.credit_note_facturx, name="credit_note_facturx"),
    path("subscriptions/<int:pk>/change/", views.subscription_change, name="change"),
    path("subscriptions/<int:pk>/change/preview/", views.subscription_change_preview, name="change_preview"),
    path("subscriptions/<int:pk>/changes/<int:change_pk>/", views.subscription_change_done, name="change_done"),
    path("subscriptions/<int:pk>/cancel/", views.subscription_cancel, name="cancel"),
    path("payment-methods/", views.payment_methods, name="payment_methods"),
    path("payment-methods/card/", views.payment_method_add_card, name="add_card"),
    path("payment-methods/card/return/", views.payment_method_card_return, name="card_return"),
    path("payment-methods/sepa/", views.payment_method_add_sepa, name="add_sepa"),
    path("payment-methods/bank-transfer/", views.bank_transfer, name="bank_transfer"),
    path("payment-methods/bank-transfer/use/", views.bank_transfer_use, name="bank_transfer_use"),
    path("payment-methods/<int:pk>/default/", views.payment_method_default, name="method_default"),
    path("payment-methods/<int:pk>/remove/", views.payment_method_remove, name="method_remove"),
    path("details/", views.billing_details, name="details"),
    path("details/notifications/", views.notification_preferences, name="notification_preferences"),
    path("export/", views.data_export, name="export"),
    path("verify/", views.step_up_verify, name="verify"),
    path("login/verify/", views.login_verify, name="login_verify"),
    path("security/", views.security, name="security"),
    path("security/totp/", views.totp_enrol, name="totp_enrol"),
    path("security/totp/disable/", views.totp_disable, name="totp_disable"),
    path("security/recovery-codes/", views.recovery_codes_renew, name="recovery_codes"),
    path("view-as/<int:customer_pk>/", views.impersonate_start, name="impersonate"),
    path("view-as/stop/", views.impersonate_stop, name="impersonate_stop"),
]
