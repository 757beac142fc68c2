"""Password hashing (argon2), the password rule and the lockout rule (R8)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tongban.errors import InvalidInput

_hasher = PasswordHasher()
# Verified against when the username does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("no such account: timing equaliser")

MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password_rule(password: str, *, username: str = "") -> None:
    """At least 10 characters from at least 3 of: lower case, upper case, digits, symbols."""
    classes = sum(
        [
            any(c in string.ascii_lowercase for c in password),
            any(c in string.ascii_uppercase for c in password),
            any(c in string.digits for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if len(password) < MIN_LENGTH or classes < 3:
        raise InvalidInput(
            "密码至少 10 位，并包含大写字母、小写字母、数字、符号中的至少三类",
            code="weak_password",
        )
    if username and username.lower() in password.lower():
        raise InvalidInput("密码不能包含用户名", code="weak_password")
    if len(password) > 200:
        raise InvalidInput("密码过长", code="weak_password")


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    attempts: int = 5
    duration: timedelta = timedelta(minutes=30)

    def locked(self, locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and now < locked_until
