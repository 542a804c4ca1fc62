"""The Graph layer's pure parts: decoders, Retry-After, credentials and the snapshot file format."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from email.utils import formatdate

import pytest
from azure.core.exceptions import ClientAuthenticationError

from syncd.config import GraphConfig
from syncd.errors import ConfigError, SnapshotError
from syncd.graph.auth import TokenFileCredential, build_credential, resolve_client_secret
from syncd.graph.classify import graph_error, path_of, permission_for
from syncd.graph.client import check_base_url
from syncd.graph.decode import (
    BadResponse,
    decode_assignment,
    decode_batch_response,
    decode_error,
    decode_member,
    decode_page,
    decode_user,
    has_user_fields,
    load_object,
)
from syncd.graph.reads import listing_is_cheaper
from syncd.graph.retry import RetryPolicy, parse_retry_after
from syncd.graph.snapshot_file import read_snapshot, snapshot_from_json, snapshot_to_json, write_snapshot
from syncd.model import DEFAULT_ACCESS_ROLE_ID, AppRole, Assignment, FetchFailure, Snapshot, SourceGroup, SourceUser

# --------------------------------------------------------------------------- Retry-After


def test_fractional_retry_after_is_read_as_seconds():
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("0.05") == pytest.approx(0.05)
    assert parse_retry_after(" 30 ") == 30.0


def test_retry_after_as_http_date_counts_from_now():
    now = time.time()
    header = formatdate(now + 10, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(10, abs=1)


def test_unreadable_or_negative_retry_after():
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-3") == 0.0


def test_retry_policy_honours_retry_after_capped_and_backs_off_without_it():
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4, retry_after_max=60, jitter=0)
    assert policy.delay(0, 2.128) == pytest.approx(2.128)
    assert policy.delay(3, 600) == 60
    assert [policy.delay(attempt, None) for attempt in range(5)] == [0.5, 1, 2, 4, 4]


# --------------------------------------------------------------------------- errors


def test_403_names_the_permission_the_path_needs():
    body = {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}}
    error = graph_error(403, json.dumps(body).encode(), "reading the members of group g1", "/groups/g1/members")
    assert error.code == "GRAPH_PERMISSION"
    assert "GroupMember.Read.All" in error.message
    assert "Authorization_RequestDenied: Insufficient privileges." in error.message
    assert permission_for("/servicePrincipals/x/appRoleAssignedTo") == "Application.Read.All"
    assert permission_for("/users/x") == "User.Read.All"


def test_status_codes_map_to_error_codes():
    codes = {status: graph_error(status, b"", "reading", "/users").code for status in (400, 401, 404, 429, 503)}
    assert codes == {
        400: "GRAPH_BAD_RESPONSE",
        401: "GRAPH_AUTH",
        404: "GRAPH_NOT_FOUND",
        429: "GRAPH_THROTTLED",
        503: "GRAPH_UNAVAILABLE",
    }


def test_path_of_strips_host_version_and_query():
    assert path_of("https://graph.microsoft.com/v1.0/groups/g1/members?$top=999") == "/groups/g1/members"
    assert path_of("/users/u1?$select=id") == "/users/u1"


def test_plain_http_is_refused_except_on_loopback():
    check_base_url("http://127.0.0.1:8080/v1.0")
    check_base_url("http://localhost/v1.0")
    with pytest.raises(ConfigError, match=r"graph\.base_url"):
        check_base_url("http://graph.example.com/v1.0")


# --------------------------------------------------------------------------- decoders


def test_decoders_check_types_and_name_the_field():
    with pytest.raises(BadResponse, match="'value' is not a list"):
        decode_page({"value": {}})
    with pytest.raises(BadResponse, match="accountEnabled"):
        decode_user({"id": "u1", "accountEnabled": "yes"})
    with pytest.raises(BadResponse, match="'id' is missing"):
        decode_user({"displayName": "Nobody"})
    with pytest.raises(BadResponse, match="not valid JSON"):
        load_object(b"<html>gateway</html>")


def test_assignment_of_a_service_principal_is_ignored_and_null_role_is_default_access():
    assert decode_assignment({"principalId": "sp", "principalType": "ServicePrincipal", "appRoleId": "r"}) is None
    assert decode_assignment({"principalId": "u1", "principalType": "User", "appRoleId": None}) == Assignment(
        "u1", "User", DEFAULT_ACCESS_ROLE_ID
    )


def test_members_that_are_not_users_are_skipped_and_id_only_members_are_detected():
    assert decode_member({"@odata.type": "#microsoft.graph.group", "id": "g2"}) is None
    assert decode_member({"@odata.type": "#microsoft.graph.user", "id": "u1"}) == SourceUser(
        "u1", attributes={"jobTitle": None}
    )
    assert not has_user_fields({"@odata.type": "#microsoft.graph.user", "id": "u1"})
    assert not has_user_fields({"id": "u1", "userPrincipalName": None, "displayName": None, "accountEnabled": None})
    assert has_user_fields({"id": "u1", "userPrincipalName": "ada@contoso.com", "mail": None})


def test_disabled_user_and_null_account_enabled():
    assert decode_user({"id": "u1", "accountEnabled": False}).account_enabled is False
    assert decode_user({"id": "u1", "accountEnabled": None}).account_enabled is None
    assert decode_user({"id": "u1"}).account_enabled is True


def test_batch_response_answers_are_keyed_by_id_with_lower_case_headers():
    answers = decode_batch_response(
        {
            "responses": [
                {"id": "2", "status": 429, "headers": {"Retry-After": "0.5"}, "body": {"error": {"code": "x"}}},
                {"id": "1", "status": 200, "body": {"id": "u1"}},
            ]
        }
    )
    assert answers["2"].headers["retry-after"] == "0.5"
    assert answers["1"].body == {"id": "u1"}
    with pytest.raises(BadResponse, match="status"):
        decode_batch_response({"responses": [{"id": "1", "status": "200"}]})


def test_error_body_code_and_message():
    assert decode_error(b'{"error": {"code": "Request_ResourceNotFound", "message": "gone"}}') == (
        "Request_ResourceNotFound",
        "gone",
    )
    assert decode_error(b"<html>") == ("", "")


def test_listing_users_is_chosen_only_when_it_takes_fewer_requests():
    assert listing_is_cheaper(direct_users=500, directory_users=5000)  # 1 + 6 < 25
    assert not listing_is_cheaper(direct_users=500, directory_users=50_000)  # 1 + 51 > 25
    assert not listing_is_cheaper(direct_users=40, directory_users=10)  # 1 + 1 == 2


# --------------------------------------------------------------------------- credentials


def test_token_file_is_read_again_when_it_changes(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    credential = TokenFileCredential(token_file)
    assert credential.get_token("https://graph.microsoft.com/.default").token == "first-token"
    token_file.write_text("second-token-longer\n")
    os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert credential.get_token("https://graph.microsoft.com/.default").token == "second-token-longer"
    assert "token" not in repr(credential).replace(str(token_file), "")


def test_token_file_expiry_comes_from_the_jwt(tmp_path):
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 2_000_000_000}).encode()).decode().rstrip("=")
    token_file = tmp_path / "token"
    token_file.write_text(f"e30.{payload}.sig")
    assert TokenFileCredential(token_file).get_token("scope").expires_on == 2_000_000_000


def test_missing_token_file_is_an_authentication_error(tmp_path):
    with pytest.raises(ClientAuthenticationError, match=r"graph\.token_file"):
        TokenFileCredential(tmp_path / "absent").get_token("scope")


def test_client_secret_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNCD_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "client-secret").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert resolve_client_secret(GraphConfig())[0] == "from-systemd"
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "from-env")
    assert resolve_client_secret(GraphConfig())[0] == "from-env"
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert resolve_client_secret(GraphConfig(client_secret_file=str(secret_file)))[0] == "from-file"
    assert resolve_client_secret(GraphConfig(client_secret="inline"))[0] == "inline"


def test_no_client_secret_anywhere_is_a_config_error_that_says_where_to_put_one(monkeypatch):
    monkeypatch.delenv("SYNCD_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as raised:
        build_credential(GraphConfig(tenant_id="t", client_id="c", auth="client_secret"))
    assert "graph.client_secret: no client secret found; set client_secret_file, SYNCD_CLIENT_SECRET" in str(
        raised.value
    )


def test_the_secret_never_appears_in_a_repr(monkeypatch):
    monkeypatch.delenv("SYNCD_CLIENT_SECRET", raising=False)
    graph = GraphConfig(tenant_id="t", client_id="c", client_secret="s3cr3t-value", auth="client_secret")
    credential = build_credential(graph)
    try:
        assert "s3cr3t-value" not in repr(graph)
        assert "s3cr3t-value" not in repr(credential)
    finally:
        asyncio.run(credential.close())


# --------------------------------------------------------------------------- snapshot file


def _sample_snapshot() -> Snapshot:
    return Snapshot(
        scope="assigned",
        app_roles=(AppRole("r1", "Admin", "admin"), AppRole("r2", "Reader", None)),
        assignments=(Assignment("u1", "User", "r1"), Assignment("g1", "Group")),
        groups=(SourceGroup("g1", "Sales", ("u1", "u2")), SourceGroup("g2", "Broken", None)),
        users=(
            SourceUser("u1", "ada@contoso.com", "ada@contoso.com", "Ada Lovelace", True, {"jobTitle": "Engineer"}),
            SourceUser("u2", "zoë@contoso.com", None, "Zoë O'Brien", False, {"jobTitle": None}),
        ),
        deleted_user_ids=frozenset({"u9"}),
        failures=(FetchFailure("GRAPH_UNAVAILABLE", "503", "/groups/g2/members"),),
        partial=False,
    )


def test_snapshot_file_round_trip(tmp_path):
    snapshot = _sample_snapshot()
    path = tmp_path / "snapshot.json"
    write_snapshot(snapshot, path)
    assert read_snapshot(path) == snapshot
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "syncd-snapshot" and document["version"] == 1
    assert document["groups"][1]["members"] is None
    assert document["users"][1]["accountEnabled"] is False


def test_minimal_hand_written_snapshot_takes_defaults_and_ignores_unknown_keys():
    snapshot = snapshot_from_json(
        {
            "format": "syncd-snapshot",
            "note": "captured by hand",
            "assignments": [{"principalId": "u1", "principalType": "User"}],
            "users": [{"id": "u1", "userPrincipalName": "ada@contoso.com", "@odata.type": "#microsoft.graph.user"}],
        }
    )
    assert snapshot.assignments == (Assignment("u1", "User", DEFAULT_ACCESS_ROLE_ID),)
    assert snapshot.users == (SourceUser("u1", "ada@contoso.com", attributes={"jobTitle": None}),)
    assert snapshot.complete and not snapshot.partial and snapshot.scope == "assigned"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("format"), 'format: must be "syncd-snapshot"'),
        (lambda d: d.update(version=2), "version: 2 is newer"),
        (lambda d: d.update(scope="some"), 'scope: must be "assigned" or "all"'),
        (lambda d: d.update(users={}), "users: must be a list"),
        (lambda d: d["users"][1].update(accountEnabled="no"), "users[1].accountEnabled: must be true, false or null"),
        (lambda d: d["users"][0].pop("id"), "users[0].id: required"),
        (lambda d: d["assignments"][0].update(principalType="Device"), 'assignments[0].principalType: must be "User"'),
        (lambda d: d["groups"][0].update(members=["u1", 7]), "groups[0].members[1]: must be a string"),
        (lambda d: d["groups"][0].update(members="u1"), "groups[0].members: must be a list of ids or null"),
        (lambda d: d.update(partial="yes"), "partial: must be true or false"),
        (lambda d: d["appRoles"].append("Admin"), "appRoles[2]: must be an object"),
    ],
)
def test_bad_snapshot_files_name_the_key_and_the_item(change, message):
    document = snapshot_to_json(_sample_snapshot())
    change(document)
    with pytest.raises(SnapshotError) as raised:
        snapshot_from_json(document)
    assert message in raised.value.message
    assert raised.value.code == "SNAPSHOT_INVALID"


def test_unreadable_snapshot_files_say_which_file(tmp_path):
    with pytest.raises(SnapshotError, match="no such file"):
        read_snapshot(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "syncd-snapshot",}')
    with pytest.raises(SnapshotError, match=r"broken.json: not valid JSON: .* line 1 column"):
        read_snapshot(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"format": "syncd-snapshot", "users": [{"id": 5}]}')
    with pytest.raises(SnapshotError, match=r"wrong.json: users\[0\].id: must be a string"):
        read_snapshot(wrong)


def test_a_secret_written_in_the_config_file_is_used_with_a_warning_that_never_shows_it(caplog):
    from syncd.config import GraphConfig as Graph
    from syncd.graph.auth import resolve_client_secret

    with caplog.at_level("WARNING", logger="syncd.graph"):
        secret, source = resolve_client_secret(Graph(client_secret="hunter2-very-secret"))
    assert secret == "hunter2-very-secret" and source.name == "graph.client_secret"
    assert "prefer client_secret_file" in caplog.text
    assert "hunter2" not in caplog.text
