"""Schema-driven fuzzing: requests generated with hypothesis from the app's own OpenAPI spec must never get a
5xx. Every operation is fuzzed with schema-valid values and with arbitrary JSON bodies.

The spec's schemas are small (ints with bounds, strings with lengths, lists, flat objects, anyOf), so a
few lines turn them into strategies; hypothesis-jsonschema would do the same but does not work with
current hypothesis releases.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.scoring import Scorer
from registry.serving.app import create_app

if TYPE_CHECKING:
    from serving_fixtures import ServingShop

pytest_plugins = ["serving_fixtures"]  # the session-wide tiny shop


@pytest.fixture(scope="module")
def client(serving_shop: ServingShop) -> TestClient:
    scorer = Scorer(serving_shop.settings)
    with TestClient(create_app(scorer=scorer), raise_server_exceptions=False) as client:
        yield client
    scorer.close()


def _spec() -> dict[str, Any]:
    # The spec does not depend on the scorer, so it is read once at collection time.
    return create_app(scorer=object()).openapi()  # type: ignore[arg-type]


def _inline(node: Any, components: dict[str, Any]) -> Any:
    """Replace every {"$ref": "#/components/schemas/X"} with the schema it names."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(components[node["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


SPEC = _spec()
COMPONENTS = SPEC.get("components", {}).get("schemas", {})
OPERATIONS = [
    (method, path, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if path != "/metrics"  # no parameters; covered by the HTTP tests
]


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for a (ref-free) JSON schema of the kinds FastAPI emits for this app."""
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 64), 64))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=min(schema.get("maxItems", 20), 20))
    if kind == "object":
        properties = {k: from_schema(v) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    return JSON


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=40)


def _value(param: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = _inline(param.get("schema", {}), COMPONENTS)
    if param["in"] == "header":
        return HEADER_TEXT
    # Schema-valid values, plus the ids and names a real client would send, plus junk text.
    return (
        from_schema(schema)
        | st.integers().map(str)
        | st.sampled_from(["purchase", "production", "1"])
        | st.text()
    )


def _request(operation: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    params = {p["name"]: (p, _value(p)) for p in operation.get("parameters", [])}
    fields: dict[str, st.SearchStrategy[Any]] = {name: strategy for name, (_, strategy) in params.items()}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is not None:
        fields["__body__"] = from_schema(_inline(body, COMPONENTS)) | JSON
    return st.fixed_dictionaries(
        {n: s for n, s in fields.items() if n == "__body__" or params[n][0].get("required")},
        optional={n: s for n, s in fields.items() if n != "__body__" and not params[n][0].get("required")},
    ).map(lambda drawn: {"drawn": drawn, "params": {n: p for n, (p, _) in params.items()}})


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_no_generated_request_gets_a_server_error(client, method, path, operation):
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(_request(operation))
    def check(request: dict[str, Any]) -> None:
        drawn, params = request["drawn"], request["params"]
        url, query, headers = path, {}, {}
        for name, value in drawn.items():
            if name == "__body__":
                continue
            where = params[name]["in"]
            if where == "path":
                url = url.replace("{" + name + "}", quote(str(value), safe="") or "%20")
            elif where == "query":
                query[name] = str(value)
            elif where == "header":
                headers[params[name]["name"]] = str(value)
        kwargs: dict[str, Any] = {"params": query, "headers": headers}
        if "__body__" in drawn:
            kwargs["json"] = drawn["__body__"]
        response = client.request(method.upper(), url, **kwargs)
        assert response.status_code < 500, (method, url, kwargs, response.text)

    check()
