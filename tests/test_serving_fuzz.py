"""Schema-driven fuzzing: requests generated from the app's own OpenAPI spec (hypothesis-jsonschema) must
never get a 5xx. Every operation is fuzzed with schema-valid values and with arbitrary JSON bodies."""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from registry.scoring import Scorer
from registry.serving.app import create_app
from tests.serving_fixtures import ServingShop, serving_shop  # noqa: F401  (session fixture)


@pytest.fixture(scope="module")
def client(serving_shop: ServingShop) -> TestClient:  # noqa: F811
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
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
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
