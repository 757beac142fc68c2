"""Turning untrusted payloads (HTTP bodies, Socket.IO events) into typed values.

pydantic models with unknown fields forbidden; every failure becomes ``InvalidInput`` with
the offending fields named, never a traceback.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tongban.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, strict=True)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidInput("请求内容必须是 JSON 对象", code="invalid_input")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in e["loc"]) or "body"
            problems.append({"field": where, "problem": e["msg"]})
        fields = ", ".join(p["field"] for p in problems)
        raise InvalidInput(
            f"请求字段有误：{fields}", code="invalid_input", fields=problems
        ) from None
