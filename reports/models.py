"""Reports read other apps' tables; this app owns no data, only the permission to look."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Dashboard(models.Model):
    """No table: carries the `view_dashboards` permission and hangs the dashboards in the admin."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboards", _("Can view the reporting dashboards"))]
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboards")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
