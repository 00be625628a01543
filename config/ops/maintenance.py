"""Read-only maintenance mode: a setting, or a flag file an operator switches at run time."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def maintenance_flag_path() -> Path | None:
    configured = getattr(settings, "TARIF_MAINTENANCE_FLAG_FILE", "")
    return Path(configured) if configured else None


def maintenance_active() -> bool:
    if getattr(settings, "TARIF_MAINTENANCE_MODE", False):
        return True
    flag = maintenance_flag_path()
    return bool(flag and flag.exists())


def maintenance_set(*, active: bool, reason: str = "") -> Path:
    flag = maintenance_flag_path()
    if flag is None:
        raise ValueError("Set TARIF_MAINTENANCE_FLAG_FILE to switch maintenance mode at run time.")
    if active:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text(reason or "maintenance")
    else:
        flag.unlink(missing_ok=True)
    return flag
