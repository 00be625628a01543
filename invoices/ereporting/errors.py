from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class EReportingError(DomainError):
    code = "ereporting_error"
    http_status = 422
    default_message = _("The e-reporting operation was refused.")


class EReportingInvalidTransition(EReportingError):
    code = "ereporting_invalid_transition"
    http_status = 409
    default_message = _("This e-reporting period cannot do that in its current state.")


class EReportingPeriodOpen(EReportingError):
    code = "ereporting_period_open"
    http_status = 409
    default_message = _("This period has not ended yet: it can be built, not submitted.")


class EReportingPeriodInvalid(EReportingError):
    code = "ereporting_period_invalid"
    http_status = 400
    default_message = _("These dates are not a period of the brand's VAT regime.")


class EReportingExchangeRateMissing(EReportingError):
    code = "ereporting_exchange_rate_missing"
    http_status = 422
    default_message = _("An exchange rate to the euro is missing for this period: import the rates first.")
