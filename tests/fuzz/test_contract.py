"""Contract fuzzing: schemathesis generates requests from /openapi.json and sends them to a real
`imagegen serve`; no response may be a 5xx, and every response must match the document."""
import os
import sys
import pathlib

import pytest
import schemathesis
from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
from conftest import Server  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("MAX_EXAMPLES", "50"))
API_KEY = "contract-fuzz-key"


@pytest.fixture(scope="session")
def api_schema(tmp_path_factory):
    # With API keys on, so the document's security declaration is checked too.
    server = Server(["--model", "test", "--max-concurrent", "4", "--max-waiting", "64"],
                    {"IMAGEGEN_API_KEYS": API_KEY},
                    tmp_path_factory.mktemp("contract"))
    yield schemathesis.from_uri(server.url + "/openapi.json", base_url=server.url)
    assert server.stop() == 0


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_answers_5xx(case):
    response = case.call(timeout=30, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    # ignored_auth is left out: the document offers two alternative schemes (bearer or
    # x-api-key), and a request carrying a valid one of them is rightly accepted; the
    # integration tests check that requests without a valid key get 401.
    case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance))
