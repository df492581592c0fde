"""Each client dataclass's fields are properties of its component in the generated OpenAPI, so the client
cannot drift from the server. The component of each class is named here, explicitly."""

from __future__ import annotations

import dataclasses

import pytest
from clearinghouse_client import Answer, Budget, Dataset, Preview, Release, Run, Token, User
from drf_spectacular.generators import SchemaGenerator

#: client dataclass -> (its component in the OpenAPI, fields the client adds that the component lacks, and why)
COMPONENTS = {
    User: ("UserOutput", {}),
    Token: ("TokenIssueOutput", {}),
    Dataset: ("DatasetOutput", {}),
    Release: ("ReleaseOutput", {}),
    Run: ("RunOutput", {}),
    Preview: ("VerificationPreviewOutput", {}),
    Answer: ("VerificationSubmitOutput", {}),
    Budget: ("BudgetRowOutput", {}),
}


def _live_keys(cls, request) -> set[str] | None:
    """Fallback while a component is missing: the keys of a live answer for that object."""
    if cls is Budget:
        from tests.conftest import client_for

        request.getfixturevalue("dataset")
        _user, token = request.getfixturevalue("researcher")
        entries = client_for(token).get("/api/v1/budget/").json()["budgets"]
        return set(entries[0])
    return None


@pytest.fixture(scope="module")
def components() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


@pytest.mark.django_db
@pytest.mark.parametrize("cls", list(COMPONENTS), ids=lambda cls: cls.__name__)
def test_fields_are_properties_of_the_component(cls, components, request):
    name, extra = COMPONENTS[cls]
    fields = {f.name for f in dataclasses.fields(cls)}
    component = components.get(name)
    if component is None:
        keys = _live_keys(cls, request)
        assert keys is not None, f"no component {name!r} and no fallback for {cls.__name__}"
        assert fields == keys, f"{cls.__name__}: {sorted(fields ^ keys)}"
        return
    properties = set(component.get("properties", {}))
    assert fields - set(extra) <= properties, f"{cls.__name__} has fields {sorted(fields - set(extra) - properties)} " \
                                              f"that {name} does not document"
    assert not set(extra) & properties, f"{sorted(set(extra) & properties)} is documented now: drop the exception"
    required = set(component.get("required", []))
    assert required <= fields, f"{name} requires {sorted(required - fields)} that {cls.__name__} drops"
