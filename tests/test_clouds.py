"""National clouds: one setting picks the Graph host and the sign-in authority, and they must agree."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.pipeline.transport import AsyncHttpTransport
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from syncd.config import CLOUDS, GraphConfig, build
from syncd.errors import ConfigError, ExitCode
from syncd.graph.auth import build_credential, sign_in
from syncd.graph.client import GraphClient

EXPECTED = {
    "global": ("https://graph.microsoft.com/v1.0", "login.microsoftonline.com", "https://graph.microsoft.com/.default"),
    "usgov": ("https://graph.microsoft.us/v1.0", "login.microsoftonline.us", "https://graph.microsoft.us/.default"),
    "usgov-dod": (
        "https://dod-graph.microsoft.us/v1.0",
        "login.microsoftonline.us",
        "https://dod-graph.microsoft.us/.default",
    ),
    "china": (
        "https://microsoftgraph.chinacloudapi.cn/v1.0",
        "login.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn/.default",
    ),
}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0b9a5f2e-1c3d-4e5f-8a9b-0c1d2e3f4a5b"


def graph_section(**keys: Any) -> dict[str, Any]:
    return {
        "graph": {
            "service_principal_id": "11111111-2222-3333-4444-555555555555",
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "client_secret_file": "/etc/syncd/client-secret",
            **keys,
        }
    }


class _Answer:
    """A token endpoint's answer, as azure-identity's pipeline reads it."""

    status_code = 200
    reason = "OK"
    content_type = "application/json"

    def __init__(self, request: Any) -> None:
        self.request = request
        self.headers = {"content-type": "application/json"}
        self._body = json.dumps({"access_token": "t0k3n", "expires_in": 3600, "token_type": "Bearer"}).encode()

    def body(self) -> bytes:
        return self._body

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()


class RecordingTransport(AsyncHttpTransport):
    """Answers every token request itself and keeps it: no request leaves the process."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def __aenter__(self) -> RecordingTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        return _Answer(request)


def token_request(graph: GraphConfig) -> tuple[str, dict[str, str]]:
    """The URL and form a credential for ``graph`` posts to get its token (caught, never sent)."""
    transport = RecordingTransport()

    async def get() -> None:
        credential = build_credential(graph, transport=transport)
        try:
            await credential.get_token(sign_in(graph).scope)
        finally:
            await credential.close()

    asyncio.run(get())
    (request,) = [r for r in transport.requests if r.url.endswith("/oauth2/v2.0/token")]
    return request.url, dict(request.data)


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_each_cloud_sets_the_graph_host_the_authority_and_the_scope(cloud):
    base_url, login_host, scope = EXPECTED[cloud]
    graph = build(graph_section(cloud=cloud)).graph
    assert graph.base_url == base_url
    target = sign_in(graph)
    assert (target.authority, target.scope) == (f"https://{login_host}", scope)


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_a_client_secret_signs_in_at_the_clouds_authority_for_its_graph(cloud, monkeypatch):
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "s3cr3t-value")
    _, login_host, scope = EXPECTED[cloud]
    graph = GraphConfig(cloud=cloud, tenant_id=TENANT, client_id=CLIENT, auth="client_secret")
    url, form = token_request(graph)
    assert url == f"https://{login_host}/{TENANT}/oauth2/v2.0/token"
    assert form["scope"] == scope and form["client_id"] == CLIENT


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_a_certificate_signs_in_at_the_clouds_authority_for_its_graph(cloud, tmp_path):
    _, login_host, scope = EXPECTED[cloud]
    certificate = tmp_path / "client.pem"
    certificate.write_bytes(_self_signed_pem())
    graph = GraphConfig(
        cloud=cloud, tenant_id=TENANT, client_id=CLIENT, auth="certificate", certificate_path=str(certificate)
    )
    url, form = token_request(graph)
    assert url == f"https://{login_host}/{TENANT}/oauth2/v2.0/token"
    assert form["scope"] == scope and "client_assertion" in form


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_a_workload_identity_signs_in_at_the_clouds_authority_for_its_graph(cloud, tmp_path, monkeypatch):
    _, login_host, scope = EXPECTED[cloud]
    federated = tmp_path / "federated-token"
    federated.write_text("eyJhbGciOi.federated.token")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(federated))
    graph = GraphConfig(cloud=cloud, tenant_id=TENANT, client_id=CLIENT, auth="workload_identity")
    url, form = token_request(graph)
    assert url == f"https://{login_host}/{TENANT}/oauth2/v2.0/token"
    assert form["scope"] == scope


def test_the_graph_client_asks_for_a_token_for_its_clouds_scope():
    graph = GraphConfig(cloud="china", auth="token_file", token_file="/dev/null", service_principal_id="x")
    client = GraphClient(graph, credential=object())
    try:
        assert client.scope == "https://microsoftgraph.chinacloudapi.cn/.default"
        assert client.base_url == "https://microsoftgraph.chinacloudapi.cn/v1.0"
    finally:
        asyncio.run(client.close())


def test_a_managed_identity_and_a_token_file_sign_in_at_no_authority():
    for auth in ("managed_identity", "token_file"):
        target = sign_in(GraphConfig(cloud="usgov", auth=auth, token_file="/dev/null"))
        assert target.authority is None and target.scope == "https://graph.microsoft.us/.default"


@pytest.mark.parametrize(
    ("cloud", "base_url"),
    [
        ("china", "https://graph.microsoft.com/v1.0"),
        ("global", "https://graph.microsoft.us/v1.0"),
        ("usgov", "https://dod-graph.microsoft.us/v1.0"),
        ("usgov-dod", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
        ("global", "https://graph.example.com/v1.0"),
    ],
)
def test_a_base_url_of_another_cloud_is_refused_with_exit_78(cloud, base_url):
    with pytest.raises(ConfigError) as refused:
        build(graph_section(cloud=cloud, base_url=base_url))
    assert refused.value.exit_code == ExitCode.CONFIG
    (problem,) = refused.value.problems
    assert problem.startswith("graph.base_url:") and f'graph.cloud is "{cloud}"' in problem


def test_an_unknown_cloud_and_a_beta_base_url_are_refused():
    with pytest.raises(ConfigError) as refused:
        build(graph_section(cloud="germany"))
    assert any(p.startswith("graph.cloud: must be") for p in refused.value.problems)
    with pytest.raises(ConfigError, match=r"graph\.base_url: syncd speaks Graph v1\.0"):
        build(graph_section(base_url="https://graph.microsoft.com/beta"))


def test_the_simulator_on_loopback_works_with_any_cloud():
    for cloud in CLOUDS:
        graph = build(graph_section(cloud=cloud, base_url="http://127.0.0.1:8080/v1.0")).graph
        assert graph.base_url == "http://127.0.0.1:8080/v1.0"
        assert urlsplit(sign_in(graph).scope).hostname == CLOUDS[cloud].graph_host


def test_a_matching_base_url_is_accepted():
    graph = build(graph_section(cloud="usgov", base_url="https://graph.microsoft.us/v1.0/")).graph
    assert sign_in(graph).authority == "https://login.microsoftonline.us"


def test_a_bad_cloud_exits_78_from_the_command_line(tmp_path, capsys):
    from syncd.cli import main

    config = tmp_path / "config.toml"
    config.write_text(
        '[graph]\nservice_principal_id = "x"\ntenant_id = "t"\nclient_id = "c"\ncloud = "china"\n'
        'base_url = "https://graph.microsoft.com/v1.0"\n'
    )
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "config", "check"])
    assert exited.value.code == 78
    assert "graph.base_url" in capsys.readouterr().err


def _self_signed_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)
