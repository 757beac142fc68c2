"""Personal data leaves the server masked (R11): in views, exports and logs."""

from __future__ import annotations


def mask_id_number(value: str) -> str:
    """``410727199001011234`` -> ``410727********1234``: region kept, birth date hidden."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    """``13800000011`` -> ``138****0011``."""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """``张三丰`` -> ``张**``: enough for a clerk to recognise, not to identify."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)
