"""English dates in the console and the portal (issue 15): day first and a 24-hour clock, as a
European finance team reads them ("6 Dec 2026, 21:30", "06/12/2026"), not Django's American
defaults ("Dec. 6, 2026, 9:30 p.m.", "12/06/2026"). French keeps Django's formats. Typed dates
follow the same order (ISO 2026-12-06 is always accepted too)."""

from django.conf.locale.en_GB.formats import (  # noqa: F401
    DATE_INPUT_FORMATS,
    DATETIME_INPUT_FORMATS,
    DECIMAL_SEPARATOR,
    FIRST_DAY_OF_WEEK,
    MONTH_DAY_FORMAT,
    NUMBER_GROUPING,
    SHORT_DATE_FORMAT,
    THOUSAND_SEPARATOR,
    YEAR_MONTH_FORMAT,
)

DATE_FORMAT = "j M Y"  # 6 Dec 2026
TIME_FORMAT = "H:i"  # 21:30
DATETIME_FORMAT = "j M Y, H:i"  # 6 Dec 2026, 21:30
SHORT_DATETIME_FORMAT = "d/m/Y H:i"  # 06/12/2026 21:30
