"""Resident identity card numbers (GB 11643-1999): 18 characters, the last a check digit."""

from __future__ import annotations

from datetime import date

from tongban.errors import InvalidInput

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def check_digit(first17: str) -> str:
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def validate_id_number(value: str) -> str:
    """The normalised number (upper-case X), or ``InvalidInput`` with a precise code."""
    number = value.strip().upper()
    if len(number) != 18:
        raise InvalidInput("身份证号码应为 18 位", code="id_number_length")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise InvalidInput(
            "身份证号码前 17 位应为数字，最后一位为数字或 X", code="id_number_format"
        )
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidInput("身份证号码中的出生日期无效", code="id_number_birth_date") from None
    if born.year < 1900:
        raise InvalidInput("身份证号码中的出生日期无效", code="id_number_birth_date")
    if check_digit(number[:17]) != number[17]:
        raise InvalidInput("身份证号码校验位不正确", code="id_number_checksum")
    return number
