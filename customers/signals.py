from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress


def verify_email_on_password_set(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A password set through an emailed link proves the user reads that address.

    Invited customers choose their first password this way, so their email becomes
    verified without a second confirmation email.
    """
    EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=False).update(verified=True)
