"""Schemathesis against the generated OpenAPI on the WSGI app: no server errors, and every
response conforms to the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.app import create_app

from .conftest import PASSWORD, module_crm

#: The issue's bar: no server errors, and responses as documented.  A 400 for a query the
#: schema cannot fully describe (a damaged cursor, an unsortable field) is a documented answer.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api_app(tmp_path_factory, pg_database):
    kervan = module_crm(tmp_path_factory.mktemp("schemathesis"), pg_database)
    admin = kervan.users.create("admin", PASSWORD, ["admin"])
    account = kervan.records.create("account", {"name": "Şema A.Ş.", "kind": "individual"})
    kervan.records.create("lead", {"full_name": "Schema Lead", "source": "other",
                                   "email": "s@example.com"})
    kervan.records.create("opportunity", {"name": "Şema fırsatı", "account": account["id"]})
    app = create_app({"TESTING": True}, kervan=kervan)
    yield app, kervan.users.create_token(admin)
    kervan.close()


def test_every_operation_conforms(api_app):
    """Every operation, a few generated cases each: no 5xx, every response as documented."""
    app, token = api_app
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # one run reports every failure
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert operations > 100
    assert failures == [], "\n\n".join(failures)
