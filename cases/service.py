"""The thin case module (R14): every call belongs to an application case."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cases.idnumber import validate_id_number
from cases.numbers import case_number, case_prefix
from directory.model import Account
from directory.snapshot import DirectorySnapshot
from storage import schema as s
from storage.database import Database
from tongban.clock import Clock
from tongban.errors import Forbidden, InvalidInput, NotFound
from tongban.masking import mask_id_number, mask_phone


def case_view(row: Any, snap: DirectorySnapshot) -> dict[str, Any]:
    """A case as it may leave the server: ID and phone masked (R11)."""
    matter = next((m for m in snap.matters.values() if m.id == row.matter_id), None)
    home = snap.windows.get(row.home_window_id) if row.home_window_id else None
    applicant = snap.windows.get(row.applicant_window_id)
    return {
        "id": row.id,
        "case_no": row.case_no,
        "matter_code": matter.code if matter else None,
        "matter_name": matter.name if matter else None,
        "region_code": row.region_code,
        "applicant_name": row.applicant_name,
        "applicant_id_number": mask_id_number(row.applicant_id_number),
        "applicant_phone": mask_phone(row.applicant_phone) if row.applicant_phone else "",
        "applicant_window": _window(snap, applicant),
        "home_window": _window(snap, home),
        "created_at": row.created_at.isoformat(),
    }


def _window(snap: DirectorySnapshot, window: Any) -> dict[str, Any] | None:
    if window is None:
        return None
    hall = snap.halls[window.hall_id]
    return {"id": window.id, "code": window.code, "name": window.name, "hall": hall.name}


def can_see_case(account: Account, row: Any, snap: DirectorySnapshot) -> bool:
    """Staff of either window; supervisors and auditors over either window's agency; admin."""
    windows = {row.applicant_window_id, row.home_window_id} - {None}
    if account.role == "admin":
        return True
    if account.role in ("staff", "expert"):
        return bool(windows & set(account.window_ids))
    if account.role in ("supervisor", "auditor"):
        scope = snap.subtree(account.agency_id)
        return any(snap.agency_of_window(w).id in scope for w in windows if w in snap.windows)
    return False


class CaseService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        *,
        account: Account,
        snap: DirectorySnapshot,
        matter_code: str,
        region_code: str,
        applicant_name: str,
        applicant_id_number: str,
        applicant_phone: str = "",
    ) -> dict[str, Any]:
        applicant_windows = [
            w for w in account.window_ids if w in snap.windows and snap.windows[w].applicant_side
        ]
        if account.role != "staff" or not applicant_windows:
            raise Forbidden("只有申请地通办窗口人员可以登记案件", code="not_applicant_staff")
        id_number = validate_id_number(applicant_id_number)
        name = applicant_name.strip()
        if not 1 <= len(name) <= 60:
            raise InvalidInput("请填写申请人姓名", code="applicant_name")
        phone = applicant_phone.strip()
        if phone and not (phone.isdigit() and len(phone) == 11):
            raise InvalidInput("手机号码必须是 11 位数字", code="bad_mobile")
        matter = snap.matter(matter_code)
        if snap.agency_by_region(region_code) is None:
            raise InvalidInput(f"未知的属地区划代码 {region_code}", code="unknown_region")
        home = snap.home_window(matter.id, region_code)
        now = self._clock.now()
        prefix = case_prefix(region_code, now)
        for _attempt in range(5):
            try:
                async with self._db.begin() as conn:
                    taken = await conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(s.cases)
                        .where(s.cases.c.case_no.like(prefix + "%"))
                    )
                    number = case_number(region_code, now, int(taken or 0) + 1)
                    case_id = await conn.scalar(
                        sa.insert(s.cases)
                        .values(
                            case_no=number,
                            matter_id=matter.id,
                            region_code=region_code,
                            applicant_name=name,
                            applicant_id_number=id_number,
                            applicant_phone=phone,
                            applicant_window_id=applicant_windows[0],
                            home_window_id=home.id if home else None,
                            created_by=account.id,
                            created_at=now,
                        )
                        .returning(s.cases.c.id)
                    )
                break
            except IntegrityError:
                continue  # two clerks took the same sequence number at once: take the next
        else:  # pragma: no cover - five collisions in a row
            raise InvalidInput("案件编号冲突，请重试", code="case_number_conflict")
        return await self.get(account=account, snap=snap, case_id=int(case_id))

    async def _row(self, case_id: int) -> Any:
        async with self._db.connect() as conn:
            row = (await conn.execute(sa.select(s.cases).where(s.cases.c.id == case_id))).first()
        if row is None:
            raise NotFound("没有这个案件", code="case_not_found")
        return row

    async def visible_row(self, *, account: Account, snap: DirectorySnapshot, case_id: int) -> Any:
        row = await self._row(case_id)
        if not can_see_case(account, row, snap):
            raise Forbidden("无权查看该案件", code="case_not_visible")
        return row

    async def get(
        self, *, account: Account, snap: DirectorySnapshot, case_id: int
    ) -> dict[str, Any]:
        row = await self.visible_row(account=account, snap=snap, case_id=case_id)
        view = case_view(row, snap)
        async with self._db.connect() as conn:
            calls = await conn.execute(
                sa.select(s.calls)
                .where(s.calls.c.case_id == case_id)
                .order_by(s.calls.c.requested_at)
            )
            view["calls"] = [
                {
                    "id": c.id,
                    "state": c.state,
                    "requested_at": c.requested_at.isoformat(),
                    "answered_at": c.answered_at.isoformat() if c.answered_at else None,
                    "ended_at": c.ended_at.isoformat() if c.ended_at else None,
                    "end_reason": c.end_reason,
                }
                for c in calls
            ]
            recs = await conn.execute(
                sa.select(s.recordings).where(s.recordings.c.case_id == case_id)
            )
            view["recordings"] = [
                {
                    "id": r.id,
                    "call_id": r.call_id,
                    "state": r.state,
                    "started_at": r.started_at.isoformat(),
                    "duration_s": r.duration_s,
                    "expires_at": r.expires_at.isoformat(),
                }
                for r in recs
            ]
        return view

    async def search(
        self, *, account: Account, snap: DirectorySnapshot, case_no: str = "", limit: int = 50
    ) -> list[dict[str, Any]]:
        query = sa.select(s.cases).order_by(s.cases.c.created_at.desc()).limit(500)
        if case_no:
            query = query.where(s.cases.c.case_no.like(f"%{case_no.strip()}%"))
        if account.role == "staff":
            mine = list(account.window_ids) or [-1]
            query = query.where(
                sa.or_(s.cases.c.applicant_window_id.in_(mine), s.cases.c.home_window_id.in_(mine))
            )
        async with self._db.connect() as conn:
            rows = list(await conn.execute(query))
        return [case_view(r, snap) for r in rows if can_see_case(account, r, snap)][:limit]
