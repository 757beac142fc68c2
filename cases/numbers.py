"""Readable case numbers: ``TB`` + home region + local date + a daily sequence."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def case_prefix(region_code: str, at: datetime) -> str:
    return f"TB{region_code}-{at.astimezone(SHANGHAI):%Y%m%d}-"


def case_number(region_code: str, at: datetime, sequence: int) -> str:
    """``TB410727-20261128-0001``."""
    return f"{case_prefix(region_code, at)}{sequence:04d}"
