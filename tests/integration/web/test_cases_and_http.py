"""R14 cases with masked personal data (R11), and the HTTP edges: JSON errors, Origin
check, size limit, health and metrics."""

from __future__ import annotations

from typing import Any

from cases.idnumber import check_digit

ID17 = "41072719900101123"
ID = ID17 + check_digit(ID17)


def new_case(**over: Any) -> dict[str, Any]:
    body = {
        "matter_code": "HN-ZJ-001",
        "region_code": "410727",
        "applicant_name": "张三",
        "applicant_id_number": ID,
        "applicant_phone": "13912345678",
    }
    body.update(over)
    return body


async def test_case_with_a_bad_id_number_is_refused_with_a_code(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("zz.a1")
    status, body = await api.post(
        "/api/cases", new_case(applicant_id_number=ID17 + "0" if ID[-1] != "0" else ID17 + "1")
    )
    assert status == 400 and body["error"]["code"] == "id_number_checksum"


async def test_the_full_id_number_and_phone_appear_in_no_response(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("zz.a1")
    async with api.http.post("/api/cases", json=new_case()) as resp:
        raw = await resp.text()
        assert resp.status == 201, raw
        case = await resp.json()
    assert ID not in raw and "13912345678" not in raw
    assert case["applicant_id_number"] == ID[:6] + "********" + ID[-4:]
    assert case["case_no"].startswith("TB410727-")
    assert case["home_window"]["code"] == "FQ-ZJ-01"
    for path in (f"/api/cases/{case['id']}", f"/api/cases?case_no={case['case_no']}"):
        async with api.http.get(path) as resp:
            raw = await resp.text()
            assert resp.status == 200
        assert ID not in raw and "13912345678" not in raw
        assert case["case_no"] in raw
    home = await server.browser("fq.h1")
    assert (await home.get(f"/api/cases/{case['id']}"))[0] == 200, "the home window sees it"
    other = await server.browser("lk.h1")
    status, body = await other.get(f"/api/cases/{case['id']}")
    assert status == 403 and body["error"]["code"] == "case_not_visible"
    sup = await server.browser("fq.sup")
    assert (await sup.get(f"/api/cases/{case['id']}"))[0] == 200
    ly = await server.browser("ly.audit")
    assert (await ly.get(f"/api/cases/{case['id']}"))[0] == 403


async def test_only_applicant_side_staff_create_cases(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("fq.h1")
    status, body = await api.post("/api/cases", new_case())
    assert status == 403 and body["error"]["code"] == "not_applicant_staff"


async def test_case_numbers_count_up_within_a_day(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("zz.a1")
    numbers = [(await api.post("/api/cases", new_case()))[1]["case_no"] for _ in range(3)]
    assert [n[-4:] for n in numbers] == ["0001", "0002", "0003"]


async def test_bad_input_gets_json_errors(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("zz.a1")
    async with api.http.post(
        "/api/cases", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_json"
    status, body = await api.post("/api/cases", new_case(surprise=1))
    assert status == 400 and body["error"]["code"] == "invalid_input"
    assert body["error"]["fields"][0]["field"] == "surprise"
    status, body = await api.post("/api/cases", {"matter_code": 5})
    assert status == 400 and body["error"]["code"] == "invalid_input"
    status, body = await api.post("/api/cases", [1, 2])
    assert status == 400
    status, body = await api.post("/api/cases", new_case(matter_code="NOPE"))
    assert status == 404 and body["error"]["code"] == "matter_not_found"
    status, body = await api.get("/api/cases/abc")
    assert status == 400
    status, body = await api.get("/api/nowhere")
    assert status == 404 and body["error"]["code"] == "not_found"
    async with api.http.post(
        "/api/cases", data=b"x" * (2 << 20), headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


async def test_origin_check_on_state_changing_requests(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser()
    status, body = await api.post(
        "/api/login",
        {"username": "zz.a1", "password": "Demo#2026"},
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403 and body["error"]["code"] == "bad_origin"
    status, _ = await api.post(
        "/api/login",
        {"username": "zz.a1", "password": "Demo#2026"},
        headers={"Origin": server.url},
    )
    assert status == 200, "the site's own pages are served"
    status, _ = await api.post("/api/logout")
    assert status == 200, "scripts without an Origin are served"


async def test_unauthenticated_requests_get_401(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser()
    status, body = await api.get("/api/me")
    assert status == 401 and body["error"]["code"] == "unauthenticated"


async def test_health_and_metrics(start_server: Any) -> None:
    server = await start_server()
    api = await server.browser("zz.a1")
    status, body = await api.get("/healthz")
    assert status == 200 and body["checks"]["database"] == "ok"
    status, body = await api.get("/metrics")
    assert status == 200
    assert b'tongban_logins_total{result="ok"} 1.0' in body
