"""Domain errors as HTTP answers: a status per error class and a JSON body `{"error", "detail"}` whose
detail says what to do."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from registry.features.feast_store import FeatureRepoError
from registry.model_registry import errors as registry_errors
from registry.plugin_host import PluginError
from registry.scoring import InvalidUserId, ServingConfigError
from registry.serving.schemas import ErrorOut


class NotReady(Exception):
    """The scorer is not loaded (yet); retry after /readyz answers 200."""


# Domain error -> HTTP status. Checked in order, so subclasses come before their bases.
STATUS: list[tuple[type[Exception], int]] = [
    (InvalidUserId, 422),
    (ServingConfigError, 422),
    (registry_errors.InvalidInput, 422),
    (registry_errors.AliasProtected, 403),
    (registry_errors.UnknownModel, 404),
    (registry_errors.UnknownVersion, 404),
    (registry_errors.UnknownAlias, 404),
    (registry_errors.PromotionRefused, 409),
    (registry_errors.VersionArchived, 409),
    (registry_errors.VersionInUse, 409),
    (registry_errors.NothingToRollBack, 409),
    (registry_errors.SchemaOutOfDate, 503),
    (registry_errors.ArtifactError, 503),
    (registry_errors.PluginsUnavailable, 503),
    (PluginError, 503),
    (FeatureRepoError, 503),
    (NotReady, 503),
]
# The error responses every route documents in its OpenAPI schema.
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (403, 404, 409, 422, 503)}


def error_response(status: int, exc: BaseException) -> JSONResponse:
    body = ErrorOut(error=type(exc).__name__, detail=str(exc), reasons=getattr(exc, "reasons", None))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    body = {
        "error": "InvalidRequest",
        "detail": f"{problems}; see the request schema at /docs",
        "errors": jsonable_encoder(exc.errors()),
    }
    return JSONResponse(body, status_code=422)


def install(app: FastAPI) -> None:
    """Register the handlers of every domain error and of request validation on `app`."""
    for kind, code in STATUS:
        app.add_exception_handler(kind, lambda request, exc, code=code: error_response(code, exc))
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
