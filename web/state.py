"""Typed application state: one ``AppKey`` per shared object, no module globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cases.service import CaseService
from directory.accounts import AccountService
from directory.service import DirectoryService
from storage.database import Database
from tongban.clock import Clock
from tongban.settings import Settings
from web.metrics import Metrics
from web.sessions import SessionService


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    directory: DirectoryService
    sessions: SessionService
    accounts: AccountService
    cases: CaseService
    metrics: Metrics
    extra: dict[str, Any] = field(default_factory=dict)


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
