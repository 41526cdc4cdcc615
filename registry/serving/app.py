"""The HTTP API: a thin FastAPI adapter over `Scorer` (registry.scoring) and the model registry.

`create_app(settings)` builds the app; the lifespan opens the Scorer (refusing to start on an out-of-date
registry schema, with the command that fixes it) and warms the default model. Scoring routes are plain
`def`: inference is CPU-bound, so FastAPI runs them in its thread pool instead of blocking the event loop.
Domain errors become 403/404/409/422/503 with a JSON body `{"error", "detail"}` that says what to do.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.db import errors as registry_errors
from registry.db import migrate
from registry.features.store import FeatureRepoError
from registry.plugin_host import PluginError, default_host
from registry.scoring import InvalidUserId, Score, Scorer, freeze_heap, set_inference_threads
from registry.serving.config import ServingConfig, ServingConfigError
from registry.serving.schemas import (
    AliasEventOut,
    AliasMoveIn,
    AliasName,
    BatchScoreIn,
    ErrorOut,
    FeaturesOut,
    HealthOut,
    ModelName,
    ModelOut,
    ReadyOut,
    score_models,
)
from registry.serving.telemetry import Telemetry
from registry.settings import Settings

log = logging.getLogger(__name__)
TOKEN_HEADER = "X-Promoter-Token"


class NotReady(Exception):
    """The scorer is not loaded (yet); retry after /readyz answers 200."""


# Domain error -> HTTP status. Checked in order, so subclasses come before their bases.
STATUS: list[tuple[type[BaseException], int]] = [
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
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (403, 404, 409, 422, 503)}


def _error(status: int, exc: BaseException) -> JSONResponse:
    body = ErrorOut(error=type(exc).__name__, detail=str(exc), reasons=getattr(exc, "reasons", None))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): latency, requests and errors by route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The template (/v1/score/{user_id}), not the path, so label cardinality stays bounded.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.telemetry.observe(route, status, time.perf_counter() - started)


def get_scorer(request: Request) -> Scorer:
    scorer: Scorer | None = getattr(request.app.state, "scorer", None)
    if scorer is None:
        raise NotReady("the scorer is not loaded yet; retry when GET /readyz answers 200")
    return scorer


def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


ScorerDep = Annotated[Scorer, Depends(get_scorer)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
ModelQuery = Annotated[ModelName, Query()]
AliasQuery = Annotated[AliasName, Query()]


def _record(telemetry: Telemetry, scores: list[Score]) -> None:
    served: dict[tuple[str, str, int], int] = {}
    for s in scores:
        served[(s.model, s.alias, s.version)] = served.get((s.model, s.alias, s.version), 0) + 1
    for (model, alias, version), users in served.items():
        telemetry.served(model, alias, version, users)


def create_app(
    settings: Settings | None = None,
    *,
    serving: ServingConfig | None = None,
    scorer: Scorer | None = None,
    ready_model: str = "purchase",
    ready_alias: str = "production",
    freeze: bool = False,
) -> FastAPI:
    """The HTTP app. `scorer` may be passed in (tests, embedding); otherwise the lifespan builds one from
    `settings` (default: the environment) and `serving` (default: SHOPSCORE_SERVING_CONFIG). `freeze`:
    registry.scoring.freeze_heap() after warm-up (a server process; not in tests that build many apps)."""

    def make_scorer() -> Scorer:
        if scorer is not None:
            return scorer
        return Scorer(settings or Settings.from_env(), serving=serving or ServingConfig.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opening refuses an out-of-date registry schema (SchemaOutOfDate names `shopscore db upgrade`), so a
        # server never starts on a schema its code does not understand.
        app.state.scorer = make_scorer()
        try:
            app.state.scorer.warm(ready_model, ready_alias)
        except Exception as exc:  # no production model yet is normal for a new registry: /readyz says so
            log.warning("not ready: %s", exc)
        if freeze:
            freeze_heap()
        try:
            yield
        finally:
            if scorer is None:  # close only what this app opened
                app.state.scorer.close()
            app.state.scorer = None

    # The score schema lists the answers of the heads installed here (registry.tasks.Answer).
    ScoreOut, BatchScoreOut = score_models(  # noqa: N806 -- classes, named as classes
        [h.cls.answer for h in default_host().heads.values()]
    )

    app = FastAPI(
        title="shopscore",
        summary="Purchase-propensity scores from Feast features and registered PyTorch models.",
        version="1",
        lifespan=lifespan,
    )
    app.state.scorer = None
    app.state.telemetry = Telemetry()
    app.add_middleware(MetricsMiddleware, telemetry=app.state.telemetry)

    for kind, code in STATUS:
        app.add_exception_handler(kind, lambda request, exc, code=code: _error(code, exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        body = {
            "error": "InvalidRequest",
            "detail": f"{problems}; see the request schema at /docs",
            "errors": jsonable_encoder(exc.errors()),
        }
        return JSONResponse(body, status_code=422)

    @app.get("/v1/score/{user_id}", response_model=ScoreOut, responses=ERRORS, tags=["scoring"])
    def score_one(
        user_id: Annotated[str, Path(max_length=32, description="The shop's integer (int64) user id.")],
        scorer: ScorerDep,
        telemetry: TelemetryDep,
        model: ModelQuery = "purchase",
        alias: AliasQuery = "production",
    ) -> Any:
        """Score one user with the version `alias` points at (or the alias a traffic split picks)."""
        result = scorer.score(user_id, model=model, alias=alias)
        _record(telemetry, [result])
        return ScoreOut(**result.to_dict())

    @app.post("/v1/score", response_model=BatchScoreOut, responses=ERRORS, tags=["scoring"])
    def score_batch(body: BatchScoreIn, scorer: ScorerDep, telemetry: TelemetryDep) -> Any:
        """Score many users: one online lookup and one forward pass per answering alias."""
        results = scorer.score_many(body.user_ids, model=body.model, alias=body.alias)
        _record(telemetry, results)
        return BatchScoreOut(scores=[ScoreOut(**s.to_dict()) for s in results])

    @app.get("/v1/features/{user_id}", response_model=FeaturesOut, responses=ERRORS, tags=["features"])
    def features(
        user_id: Annotated[str, Path(max_length=32, description="The shop's integer (int64) user id.")],
        scorer: ScorerDep,
        model: ModelQuery = "purchase",
        alias: AliasQuery = "production",
    ) -> FeaturesOut:
        """Online features of one user, by the FeatureService of the version `alias` points at."""
        return FeaturesOut(**scorer.features(user_id, model=model, alias=alias).__dict__)

    @app.get("/v1/models", response_model=list[ModelOut], responses=ERRORS, tags=["models"])
    def models(scorer: ScorerDep) -> list[ModelOut]:
        """Every registered model with its latest version and aliases."""
        return [ModelOut(**m.to_dict()) for m in scorer.registry.models()]

    @app.post(
        "/v1/models/{model}/aliases/{alias}", response_model=AliasEventOut, responses=ERRORS, tags=["models"]
    )
    def move_alias(
        model: Annotated[ModelName, Path()],
        alias: Annotated[AliasName, Path()],
        body: AliasMoveIn,
        scorer: ScorerDep,
        x_promoter_token: Annotated[str | None, Header(max_length=512)] = None,
    ) -> AliasEventOut:
        """Point `alias` at a version, audited; runs the promotion checks for protected aliases.

        Every alias move over HTTP needs the promoter token in the X-Promoter-Token header, protected alias
        or not: the network surface is the wrong place for unauthenticated writes."""
        _require_token(scorer, x_promoter_token)
        event = scorer.registry.set_alias(
            model,
            alias,
            body.version,
            reason=body.reason,
            actor=body.actor,
            force=body.force,
            token=x_promoter_token,
        )
        scorer.invalidate(model)  # this replica serves the move at once; others within their poll interval
        return AliasEventOut(**event.to_dict())

    @app.get("/healthz", response_model=HealthOut, tags=["ops"])
    async def healthz() -> HealthOut:
        """The process is up (liveness)."""
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}}, tags=["ops"])
    def readyz(request: Request) -> Any:
        """Ready to score: scorer loaded, registry schema current, the default model's alias loadable."""
        scorer: Scorer | None = request.app.state.scorer
        if scorer is None:
            return JSONResponse(ReadyOut(status="starting", detail="scorer not loaded yet").model_dump(), 503)
        try:
            migrate.require_current(scorer.registry.engine)
            version = scorer.warm(ready_model, ready_alias)
        except Exception as exc:
            body = ReadyOut(status="not_ready", detail=str(exc), model=ready_model, alias=ready_alias)
            return JSONResponse(body.model_dump(), 503)
        return ReadyOut(status="ready", model=ready_model, alias=ready_alias, version=version)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics(telemetry: TelemetryDep) -> Response:
        """Prometheus metrics."""
        return Response(telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _require_token(scorer: Scorer, token: str | None) -> None:
    expected = scorer.registry.policy.promoter_token
    if expected is None:
        raise registry_errors.AliasProtected(
            "alias moves over HTTP need a promoter token, and this server has none; set "
            "SHOPSCORE_PROMOTER_TOKEN on the server and send it in the X-Promoter-Token header"
        )
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise registry_errors.AliasProtected(
            "missing or wrong X-Promoter-Token header; send the promoter token (SHOPSCORE_PROMOTER_TOKEN)"
        )


def app_from_env() -> FastAPI:
    """`create_app` with settings and serving config from the environment (the uvicorn factory)."""
    set_inference_threads()  # here, not in the CLI: each uvicorn worker process runs this factory
    return create_app(Settings.from_env(), serving=ServingConfig.from_env(), freeze=True)
