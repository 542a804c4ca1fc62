"""syncd: pull-based provisioning from a Microsoft Entra ID enterprise application.

On a schedule (or on demand) syncd reads, through Microsoft Graph, which users and groups are
assigned to one enterprise application and which app roles they hold, and makes a local SQL
store of users and teams match, with the semantics of monday.com's SCIM provisioning.

Data flows one way::

    config -> graph (fetch) -> Snapshot -> plan (diff) -> render | apply -> store

``reconcile.run_once`` is the single code path behind ``syncd plan``, ``syncd sync``, cron, the
systemd timer and the daemon (``syncd run``).
"""

__version__ = "0.1.0"
