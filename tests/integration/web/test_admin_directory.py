"""The admin manages office hours, window ownership and the calendar; every change is
audited; the audit log can be read, never changed."""

from __future__ import annotations

from typing import Any


async def test_directory_view_and_changes(start_server: Any) -> None:
    server = await start_server()
    admin = await server.browser("admin")
    staff = await server.browser("zz.a1")
    assert (await staff.get("/api/admin/directory"))[0] == 403
    status, view = await admin.get("/api/admin/directory")
    assert status == 200
    lankao = next(h for h in view["halls"] if h["name"] == "兰考县政务服务中心")
    assert [p["hours"] for p in lankao["office_hours"]] == ["09:00-12:00", "13:00-17:00"]
    (window,) = lankao["windows"]
    assert {o["region_code"] for o in window["owns"]} == {"410225"}

    status, body = await admin.post(
        "/api/admin/calendar",
        {"days": [{"day": "2027-01-01", "workday": False, "name": "元旦"}]},
    )
    assert status == 200 and body["loaded_years"] == [2027]
    assert body["warnings"] == []
    status, body = await admin.post(
        "/api/admin/calendar", {"days": [{"day": "2027-02-30", "workday": False}]}
    )
    assert status == 400 and body["error"]["code"] == "invalid_date"

    async with admin.http.put(
        f"/api/admin/halls/{lankao['id']}/office-hours",
        json={"periods": [{"days": "everyday", "opens": "08:30", "closes": "18:00"}]},
    ) as resp:
        assert resp.status == 200
    async with admin.http.put(
        f"/api/admin/halls/{lankao['id']}/office-hours",
        json={"periods": [{"days": "workday", "opens": "18:00", "closes": "08:30"}]},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "bad_period"
    fq = next(h for h in view["halls"] if h["name"] == "封丘县政务服务中心")["windows"][0]
    async with admin.http.put(
        f"/api/admin/windows/{window['id']}/matters",
        json={"owns": [{"matter_code": "HN-ZJ-001", "region_code": "410727"}]},
    ) as resp:
        assert resp.status == 400, "Fengqiu's window already owns it there"
        assert (await resp.json())["error"]["code"] == "already_owned"
    async with admin.http.put(
        f"/api/admin/windows/{fq['id']}/matters",
        json={"owns": [{"matter_code": "HN-ZJ-001", "region_code": "410727"}]},
    ) as resp:
        assert resp.status == 200
    status, view = await admin.get("/api/admin/directory")
    fq = next(h for h in view["halls"] if h["name"] == "封丘县政务服务中心")["windows"][0]
    assert fq["owns"] == [{"matter_code": "HN-ZJ-001", "region_code": "410727"}]

    status, log = await admin.get("/api/admin/audit?action=directory.*")
    assert status == 200
    assert [e["action"] for e in log["entries"]] == [
        "directory.window_matters",
        "directory.office_hours",
    ]
    auditor = await server.browser("fq.audit")
    status, log = await auditor.get("/api/admin/audit")
    assert status == 200 and all(e["action"].startswith("recording.") for e in log["entries"])
