"""R11, R14: ID numbers (GB 11643 check digit), masking, case numbers."""

from datetime import UTC, datetime

import pytest

from cases.idnumber import check_digit, validate_id_number
from cases.numbers import case_number
from tongban.errors import InvalidInput
from tongban.masking import mask_id_number, mask_name, mask_phone

GOOD = "11010519491231002X"  # the standard's own example


def test_check_digit_of_the_standards_example() -> None:
    assert check_digit(GOOD[:17]) == "X"
    assert validate_id_number(GOOD.lower()) == GOOD


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("41072719900101123", "id_number_length"),
        ("4107271990010112345", "id_number_length"),
        ("4107271990010112A4", "id_number_format"),
        ("410727199013011234", "id_number_birth_date"),
        ("110105194912310021", "id_number_checksum"),
    ],
)
def test_bad_id_numbers_have_precise_codes(value: str, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_id_number(value)
    assert err.value.code == code


def test_masks_keep_only_what_a_clerk_needs() -> None:
    assert mask_id_number("41072719900101123X") == "410727********123X"
    assert mask_phone("13800000011") == "138****0011"
    assert mask_name("张三丰") == "张**"


def test_case_number_has_region_and_local_date() -> None:
    # 17:00 UTC on 30 Nov is already 1 December in Shanghai
    at = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert case_number("410727", at, 7) == "TB410727-20261201-0007"
