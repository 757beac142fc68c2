"""Who and where, as frozen values: agencies, halls, windows, matters, accounts."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("staff", "expert", "supervisor", "auditor", "admin")
WINDOW_KINDS = ("applicant", "home", "both")


@dataclass(frozen=True, slots=True)
class Agency:
    id: int
    region_code: str
    name: str
    level: str  # province | city | county
    parent_id: int | None


@dataclass(frozen=True, slots=True)
class Hall:
    id: int
    agency_id: int
    name: str


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    hall_id: int
    code: str
    name: str
    kind: str

    @property
    def applicant_side(self) -> bool:
        return self.kind in ("applicant", "both")

    @property
    def home_side(self) -> bool:
        return self.kind in ("home", "both")


@dataclass(frozen=True, slots=True)
class Matter:
    id: int
    code: str
    name: str
    department: str


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    role: str
    agency_id: int
    mobile: str
    department: str
    disabled: bool
    window_ids: tuple[int, ...] = field(default=())
