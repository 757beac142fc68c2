"""Cases over HTTP (R14): create, get with calls and recordings, search by number."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from tongban.validation import Payload
from web.http import current_session, int_param, ok, read_body
from web.state import SERVICES


class NewCaseBody(Payload):
    matter_code: str = Field(min_length=1, max_length=40)
    region_code: str = Field(min_length=6, max_length=12)
    applicant_name: str = Field(min_length=1, max_length=60)
    applicant_id_number: str = Field(min_length=1, max_length=30)
    applicant_phone: str = Field(default="", max_length=20)


async def create_case(request: web.Request) -> web.Response:
    session = await current_session(request)
    body = await read_body(request, NewCaseBody)
    services = request.app[SERVICES]
    view = await services.cases.create(
        account=session.account,
        snap=await services.directory.snapshot(),
        matter_code=body.matter_code,
        region_code=body.region_code,
        applicant_name=body.applicant_name,
        applicant_id_number=body.applicant_id_number,
        applicant_phone=body.applicant_phone,
    )
    return ok(view, status=201)


async def get_case(request: web.Request) -> web.Response:
    session = await current_session(request)
    services = request.app[SERVICES]
    view = await services.cases.get(
        account=session.account,
        snap=await services.directory.snapshot(),
        case_id=int_param(request, "case_id"),
    )
    return ok(view)


async def search_cases(request: web.Request) -> web.Response:
    session = await current_session(request)
    services = request.app[SERVICES]
    found = await services.cases.search(
        account=session.account,
        snap=await services.directory.snapshot(),
        case_no=request.query.get("case_no", "")[:40],
    )
    return ok({"cases": found})


async def directory_view(request: web.Request) -> web.Response:
    """What the case form needs: matters and the regions that have a home window."""
    await current_session(request)
    snap = await request.app[SERVICES].directory.snapshot()
    matters = [
        {"code": m.code, "name": m.name, "department": m.department}
        for m in sorted(snap.matters.values(), key=lambda m: m.code)
    ]
    regions = []
    for code in sorted({region for (_matter, region) in snap.owners}):
        agency = snap.agency_by_region(code)
        regions.append({"code": code, "name": agency.name if agency else ""})
    return ok(
        {
            "matters": matters,
            "regions": regions,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/api/cases", create_case)
    app.router.add_get("/api/cases", search_cases)
    app.router.add_get("/api/cases/{case_id}", get_case)
    app.router.add_get("/api/directory", directory_view)
