"""Request bodies the workbench cannot take, answered in Chinese (422): the page shows ``detail`` as it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_PROBLEMS = {
    "missing": "必填",
    "string_too_short": "不能为空或过短",
    "string_too_long": "过长",
    "too_long": "项数过多",
    "enum": "取值不在可选范围内",
    "literal_error": "取值不在可选范围内",
    "bool_parsing": "应为是或否",
    "bool_type": "应为是或否",
    "datetime_parsing": "应为日期时间",
    "datetime_from_date_parsing": "应为日期时间",
    "timezone_aware": "须带时区",
    "float_parsing": "应为数字",
    "greater_than_equal": "不能为负数",
    "finite_number": "须为有限数值",
    "extra_forbidden": "不认识这一项",
    "string_type": "应为文字",
    "list_type": "应为列表",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "json_invalid": "不是有效的 JSON",
    "string_pattern_mismatch": "格式不正确",
}


def validation_detail(errors: Sequence[Any]) -> str:
    """``请求内容有误：note 过长；until 应为日期时间`` from pydantic's errors."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
        problem = _PROBLEMS.get(error.get("type", ""), error.get("msg", ""))
        parts.append(f"{location} {problem}".strip())
    return "请求内容有误：" + "；".join(parts)


def parse(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=validation_detail(error.errors())) from None


async def chinese_validation_errors(request: Request, error: Exception) -> Response:
    """The workbench's malformed requests in Chinese; the rest of reporting answers as FastAPI does."""
    assert isinstance(error, RequestValidationError)
    if request.url.path.startswith("/workbench"):
        return JSONResponse({"detail": validation_detail(error.errors())},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await request_validation_exception_handler(request, error)
