"""`manage.py advance_clock CLOCK --to ISO | --by 1M`: move a test clock and bill its customers.

One advance of the service goes at most two billing periods of the clock's shortest
subscription (Stripe's rule, `test_clock_advance_limit`); the command, an operator's tool,
goes there in as many such steps as it takes, with a progress bar.
"""

from __future__ import annotations

import re
from typing import Any

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext
from tqdm import tqdm

from billing.management.commands.bill import parse_at
from billing.models import TestClock
from billing.services.test_clocks import test_clock_advance, test_clock_advance_limit

STEP = re.compile(r"^(?P<count>\d+)(?P<unit>[hdwMy])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks", "M": "months", "y": "years"}


class Command(BaseCommand):
    help = "Advance a test clock (by id or name) and run the billing its customers would have seen."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("clock", help="test clock id or name")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--to", help="new time, ISO 8601 with a zone")
        target.add_argument("--by", help="a step such as 12h, 3d, 2w, 1M, 1y")

    def handle(self, *args: Any, **options: Any) -> None:
        reference = options["clock"]
        clock = TestClock.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
        clock = clock or TestClock.objects.filter(name=reference).first()
        if clock is None:
            raise CommandError(gettext("No test clock '%(reference)s'.") % {"reference": reference}, returncode=2)
        if options["to"]:
            to = parse_at(options["to"])
        else:
            match = STEP.match(options["by"])
            if not match:
                raise CommandError(
                    gettext("--by: '%(by)s' is not a step such as 3d or 1M") % {"by": options["by"]}, returncode=2
                )
            to = clock.frozen_time + relativedelta(**{UNITS[match["unit"]]: int(match["count"])})
        start, issued = clock.frozen_time, 0
        total = max((to - start).total_seconds(), 0.0)
        with tqdm(
            total=round(total / 86400, 1), unit="day", disable=options["verbosity"] < 1, file=self.stderr._out
        ) as bar:
            while True:
                limit = test_clock_advance_limit(clock=clock, frozen_time=clock.frozen_time)
                step = to if limit is None or to <= limit or limit <= clock.frozen_time else limit
                try:
                    run = test_clock_advance(clock=clock, to=step)
                except ValidationError as error:
                    raise CommandError("; ".join(error.messages), returncode=2) from error
                issued += run.invoices_created
                bar.update(round((step - start).total_seconds() / 86400, 1) - bar.n)
                if step == to:
                    break
        self.stdout.write(self.style.SUCCESS(f"{clock.name} is now at {to.isoformat()}: {issued} invoice(s) issued."))
