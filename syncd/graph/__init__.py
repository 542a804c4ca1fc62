"""Read one enterprise application's assignments from Microsoft Graph into a :class:`~syncd.model.Snapshot`.

``fetch`` runs a full fetch (the reads and their order are described there), ``reads`` holds the
single reads, ``principal`` the on-demand reads of one user or group, ``client`` the msgraph-sdk
adapter (raw-JSON paging, ``$batch``, concurrency, counters) with ``retry`` and ``classify``
(when to retry, what an error means), ``decode`` the raw-JSON decoders, ``auth`` the credentials,
``checks`` the ``syncd check`` steps and ``snapshot_file`` the snapshot file format.
"""

from .checks import CheckStep, check
from .client import GraphStats
from .fetch import fetch_principal, fetch_snapshot, lookup_users
from .retry import RetryPolicy
from .snapshot_file import read_snapshot, snapshot_from_json, snapshot_to_json, write_snapshot

__all__ = [
    "CheckStep",
    "GraphStats",
    "RetryPolicy",
    "check",
    "fetch_principal",
    "fetch_snapshot",
    "lookup_users",
    "read_snapshot",
    "snapshot_from_json",
    "snapshot_to_json",
    "write_snapshot",
]
