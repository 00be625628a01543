from django.urls import path

from reports.apis import ReportApi, ReportListApi

app_name = "reports_api"

urlpatterns = [
    path("", ReportListApi.as_view(), name="list"),
    path("<slug:name>/", ReportApi.as_view(), name="report"),
]
