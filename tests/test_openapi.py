"""The OpenAPI document describes every API route, and the docs page is served locally."""

import pytest
import yaml
from django.urls import get_resolver

from tests.conftest import client_for


@pytest.mark.django_db
def test_it_serves_an_openapi_document_covering_every_route():
    response = client_for(None).get("/api/v1/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/api/v1/datasets/"]["get"]["security"] == [{"bearerAuth": []}]
    documented = set(document["paths"])
    routes = {
        "/api/v1/" + str(p.pattern).replace("<int:", "{").replace("<str:", "{").replace(">", "}")
        for p in get_resolver().url_patterns[1].url_patterns
        if "schema" not in str(p.pattern)
    }
    assert routes <= documented, routes - documented


@pytest.mark.django_db
def test_swagger_ui_is_served_without_external_assets():
    response = client_for(None).get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn." not in page
