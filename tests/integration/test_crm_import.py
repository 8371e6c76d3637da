"""The CSV import page: upload, hand the bytes to the import operation, show its report."""

from __future__ import annotations

import io
import sys
import types
from dataclasses import dataclass, field

import pytest

MODULE = "helpdesk.operations.imports"


def sign_in(client, user):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


@pytest.fixture
def agent(client, make_user):
    user = make_user("agent")
    sign_in(client, user)
    return user


@dataclass
class RowError:
    row: int
    message: str
    field: str | None = None


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)


@pytest.fixture
def fake_imports(monkeypatch):
    """Stand in for the import operations, recording what the page passed them."""
    calls = []

    def import_contacts_csv(data, *, actor):
        calls.append(("contacts", data, actor))
        return Report(
            created=2, updated=1, skipped=1, errors=[RowError(4, "no email or phone", "email")]
        )

    def import_orders_csv(data, *, actor):
        calls.append(("orders", data, actor))
        return Report(created=3)

    module = types.ModuleType(MODULE)
    module.import_contacts_csv = import_contacts_csv
    module.import_orders_csv = import_orders_csv
    monkeypatch.setitem(sys.modules, MODULE, module)
    return calls


def upload(client, kind, content, filename="people.csv"):
    return client.post(
        "/crm/import",
        data={"kind": kind, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def test_import_page_shows_the_upload_form(client, agent, fake_imports):
    html = client.get("/crm/import").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html


def test_contacts_csv_is_passed_on_and_its_report_rendered_with_errors_per_row(
    client, agent, fake_imports
):
    response = upload(client, "contacts", b"name,email\nAda,ada@example.test\n")
    assert response.status_code == 200
    kind, data, actor = fake_imports[0]
    assert (kind, data, actor.id) == ("contacts", b"name,email\nAda,ada@example.test\n", agent.id)
    html = response.get_data(as_text=True)
    assert "Import report" in html
    assert "<dt>Created</dt><dd>2</dd>" in html and "<dt>Skipped</dt><dd>1</dd>" in html
    assert '<td class="rp-num">4</td>' in html and "<code>email</code>" in html
    assert "no email or phone" in html


def test_orders_csv_goes_to_the_order_import(client, agent, fake_imports):
    response = upload(client, "orders", b"external_id,total\nA-1,10\n", "orders.csv")
    assert fake_imports[0][0] == "orders"
    assert "Every row was imported." in response.get_data(as_text=True)


def test_import_without_a_file_says_so_beside_the_field(client, agent, fake_imports):
    response = client.post(
        "/crm/import", data={"kind": "contacts"}, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert 'id="file-error"' in response.get_data(as_text=True)
    assert fake_imports == []


def test_import_refuses_a_file_that_is_not_csv(client, agent, fake_imports):
    response = upload(client, "contacts", b"\x89PNG", "photo.png")
    assert response.status_code == 422
    assert "Upload a .csv file." in response.get_data(as_text=True)


def test_import_page_says_when_the_import_is_not_installed(client, agent, monkeypatch):
    monkeypatch.setitem(sys.modules, MODULE, None)
    assert "not installed on this server yet" in client.get("/crm/import").get_data(as_text=True)
    response = upload(client, "contacts", b"name\nAda\n")
    assert response.status_code == 503


def test_real_contact_import_renders_its_report(client, agent):
    pytest.importorskip(MODULE)
    response = upload(client, "contacts", b"name,email\nAda Lovelace,ada@example.test\n")
    assert response.status_code == 200
    assert "Import report" in response.get_data(as_text=True)
