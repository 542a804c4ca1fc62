"""Credentials for Microsoft Graph, built from ``[graph]``.

syncd authenticates as an application (client credentials flow): Graph accepts an access token
for the scope ``https://graph.microsoft.com/.default`` issued to the app registration, and the
application permissions granted to it (Application.Read.All, User.Read.All,
GroupMember.Read.All) decide what it may read.  ``graph.cloud`` picks the Microsoft cloud: a
national cloud has its own Graph host and its own authority (sign-in host), and a token is only
good for the Graph of the authority that issued it (:func:`sign_in`).  ``graph.auth`` picks how
that token is obtained:

* ``client_secret`` - the secret comes from the first of ``graph.client_secret`` (discouraged:
  it sits in the config file), ``graph.client_secret_file``, the environment variable
  ``SYNCD_CLIENT_SECRET`` and the systemd credential ``client-secret``
  (``$CREDENTIALS_DIRECTORY/client-secret``, set by ``LoadCredential=``);
* ``certificate`` - ``graph.certificate_path`` (PEM or PKCS12 with the private key);
* ``managed_identity`` - the Azure host's identity (``graph.client_id`` picks a user-assigned one);
* ``workload_identity`` - a federated token from ``AZURE_FEDERATED_TOKEN_FILE`` (Kubernetes);
* ``token_file`` - bring your own bearer token: the file holds one access token and is read
  again whenever it changes.  This is how tests and demos reach the simulator.

The network credentials are the asynchronous ``azure.identity.aio`` ones, so a token refresh never
blocks the event loop that runs the Graph requests; the caller closes them.  No secret or token is
ever part of a log line, a repr or an error message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from ..config import LOOPBACK_HOSTS, SECRET_ENV, GraphConfig
from ..errors import ConfigError
from ..redaction import register_secret

CREDENTIAL_NAME = "client-secret"
TOKEN_FILE_DEFAULT_LIFETIME = 300
AUTHORITY_MODES = ("client_secret", "certificate", "workload_identity")
"""The modes that sign in at the cloud's authority; a managed identity asks its host's endpoint,
a token file is already a token."""

__all__ = ["LOOPBACK_HOSTS", "SignIn", "build_credential", "graph_scope", "sign_in"]

log = logging.getLogger("syncd.graph")


@dataclass(frozen=True, slots=True)
class SignIn:
    """Where a token comes from and what it is for: the authority (None when the mode does not
    sign in at an Entra ID authority) and the Graph scope."""

    mode: str
    authority: str | None
    scope: str

    def describe(self) -> str:
        return f"signing in at {self.authority} for {self.scope}" if self.authority else f"for {self.scope}"


def sign_in(graph: GraphConfig) -> SignIn:
    """The authority and scope a credential for ``graph`` uses, from ``graph.cloud``."""
    mode = auth_mode(graph)
    cloud = graph.sign_in_cloud
    return SignIn(mode, cloud.authority if mode in AUTHORITY_MODES else None, cloud.scope)


def graph_scope(graph: GraphConfig) -> str:
    """The ``.default`` scope of the Graph of ``graph.cloud`` (``https://graph.microsoft.us/.default``)."""
    return graph.sign_in_cloud.scope


def auth_mode(graph: GraphConfig) -> str:
    """``graph.auth``, or the mode its other keys imply when it is empty."""
    if graph.auth:
        return graph.auth
    if graph.token_file:
        return "token_file"
    if graph.certificate_path:
        return "certificate"
    return "client_secret"


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where the client secret was found (for ``syncd check``); never holds the secret itself."""

    name: str


def resolve_client_secret(graph: GraphConfig) -> tuple[str, SecretSource]:
    """The client secret and where it came from, in the documented order of precedence.

    The secret is registered for masking (:mod:`syncd.redaction`) as soon as it is read.
    """
    secret, source = _find_client_secret(graph)
    register_secret(secret)
    return secret, source


def _find_client_secret(graph: GraphConfig) -> tuple[str, SecretSource]:
    if graph.client_secret:
        log.warning(
            "graph.client_secret is written in the configuration file; prefer client_secret_file, "
            "$%s or the systemd credential %s",
            SECRET_ENV,
            CREDENTIAL_NAME,
        )
        return graph.client_secret, SecretSource("graph.client_secret")
    if graph.client_secret_file:
        path = Path(graph.client_secret_file).expanduser()
        secret = _read_secret_file(path, "graph.client_secret_file")
        return secret, SecretSource(f"graph.client_secret_file ({path})")
    from_env = os.environ.get(SECRET_ENV, "").strip()
    if from_env:
        return from_env, SecretSource(f"${SECRET_ENV}")
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if directory:
        path = Path(directory) / CREDENTIAL_NAME
        if path.is_file():
            secret = _read_secret_file(path, "systemd credential client-secret")
            return secret, SecretSource(f"systemd credential ({path})")
    raise ConfigError(
        "graph.client_secret: no client secret found; set client_secret_file, "
        f"{SECRET_ENV} or a systemd credential {CREDENTIAL_NAME}"
    )


def _read_secret_file(path: Path, key: str) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{key}: {path}: cannot read: {error.__class__.__name__}") from None
    if not secret:
        raise ConfigError(f"{key}: {path} is empty")
    return secret


def credential_problems(graph: GraphConfig) -> list[str]:
    """What keeps ``graph.auth`` from getting a token, found without asking Entra ID (for config checks)."""
    mode = auth_mode(graph)
    files = {
        "certificate": ("graph.certificate_path", graph.certificate_path),
        "token_file": ("graph.token_file", graph.token_file),
    }
    if mode == "client_secret":
        try:
            resolve_client_secret(graph)
        except ConfigError as error:
            return list(error.problems)
    elif mode in files:
        key, value = files[mode]
        if not value:
            return [f'{key}: required for auth "{mode}"']
        if not Path(value).expanduser().is_file():
            return [f"{key}: {value}: no such file"]
    return []


class SecretTokens:
    """Wraps an ``azure.identity.aio`` credential so that every token it hands out is registered
    for masking before anyone can print it (Graph may echo it in an error message)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    def __repr__(self) -> str:
        return f"SecretTokens({self._credential.__class__.__name__})"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = await self._credential.get_token(*scopes, **kwargs)
        register_secret(token.token)
        return token

    async def close(self) -> None:
        await self._credential.close()

    async def __aenter__(self) -> SecretTokens:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def build_credential(graph: GraphConfig, **options: Any) -> Any:
    """A token credential for ``graph.auth``; every token it obtains is registered for masking."""
    mode = auth_mode(graph)
    if mode == "token_file":
        if not graph.token_file:
            raise ConfigError('graph.token_file: required for auth "token_file"')
        return TokenFileCredential(graph.token_file)
    return SecretTokens(_azure_credential(graph, mode, **options))


def _azure_credential(graph: GraphConfig, mode: str, **options: Any) -> Any:
    """A token credential for ``graph.auth``, signing in at the authority of ``graph.cloud``.

    An ``azure.identity.aio`` credential (an ``AsyncTokenCredential``: close it with ``await
    credential.close()``); ``options`` go to it (tests pass a ``transport``).  Raises
    :class:`~syncd.errors.ConfigError` when the mode's inputs are missing.
    """
    from azure.identity.aio import (
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    if mode == "managed_identity":
        if graph.client_id:
            return ManagedIdentityCredential(client_id=graph.client_id, **options)
        return ManagedIdentityCredential(**options)
    options["authority"] = graph.sign_in_cloud.login_host
    if mode == "workload_identity":
        if graph.tenant_id:
            options["tenant_id"] = graph.tenant_id
        if graph.client_id:
            options["client_id"] = graph.client_id
        return WorkloadIdentityCredential(**options)
    for key in ("tenant_id", "client_id"):
        if not getattr(graph, key):
            raise ConfigError(f'graph.{key}: required for auth "{mode}"')
    if mode == "certificate":
        if not graph.certificate_path:
            raise ConfigError('graph.certificate_path: required for auth "certificate"')
        path = Path(graph.certificate_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"graph.certificate_path: {path}: no such file")
        return CertificateCredential(graph.tenant_id, graph.client_id, certificate_path=str(path), **options)
    if mode == "client_secret":
        secret, _ = resolve_client_secret(graph)
        return ClientSecretCredential(graph.tenant_id, graph.client_id, secret, **options)
    raise ConfigError(f"graph.auth: unknown mode {mode!r}")


class TokenFileCredential:
    """A ``TokenCredential`` that hands out the bearer token stored in a file.

    The file is read again whenever its modification time or size changes, so another process
    (a sidecar, a cron job, a test) can rotate the token without restarting syncd.  When the
    token is a JWT its ``exp`` claim becomes ``expires_on``; otherwise the token is reported as
    valid for a few minutes, which only matters to callers that cache it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path).expanduser()
        self._stamp: tuple[int, int] | None = None
        self._token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"TokenFileCredential({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The current token of the file (the scopes are those the file's token was issued for)."""
        try:
            status = self._path.stat()
        except OSError as error:
            raise ClientAuthenticationError(
                f"graph.token_file: cannot read {self._path}: {error.strerror or error.__class__.__name__}"
            ) from None
        stamp = (status.st_mtime_ns, status.st_size)
        if self._token is None or stamp != self._stamp:
            try:
                token = self._path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise ClientAuthenticationError(
                    f"graph.token_file: cannot read {self._path}: {error.__class__.__name__}"
                ) from None
            if not token:
                raise ClientAuthenticationError(f"graph.token_file: {self._path} is empty")
            register_secret(token)
            self._token = AccessToken(token, _jwt_expiry(token) or int(time.time()) + TOKEN_FILE_DEFAULT_LIFETIME)
            self._stamp = stamp
        return self._token

    def close(self) -> None:
        """Nothing to release; present so every credential can be closed the same way."""


def _jwt_expiry(token: str) -> int | None:
    """The ``exp`` claim of a JWT (not verified: only used to report when it runs out)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return int(expiry) if isinstance(expiry, int | float) and not isinstance(expiry, bool) else None


async def close_credential(credential: Any) -> None:
    """Close a credential from :func:`build_credential`, synchronous or asynchronous."""
    close = getattr(credential, "close", None)
    if close is None:
        return
    result = close()
    if hasattr(result, "__await__"):
        await result


async def get_access_token(credential: Any, scope: str) -> AccessToken:
    """Ask ``credential`` for a token, whether it is a sync or an async credential."""
    result = credential.get_token(scope)
    if hasattr(result, "__await__"):
        result = await result
    if not isinstance(result, AccessToken):
        raise ClientAuthenticationError("the credential returned no access token")
    return result
