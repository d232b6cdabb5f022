"""The shapes of what `kflow.doctor()`, `Job.describe()`, `kflow.whoami()`/`login()`/`logout()`
and `kflow.templates()` return: plain dicts (they print and serialize as JSON as they are),
typed for editors and type checkers. A newer kflow-core may add keys; code reading these
should not assume the key set is closed."""

from __future__ import annotations

from typing import Dict, List, Optional, TypedDict


class Connection(TypedDict):
    """The cluster connection in use, named only (never a token)."""

    via: str
    """"session", "kubeconfig", "in-cluster" or "config"."""
    description: str
    server: str
    user: Optional[str]
    context: Optional[str]
    files: List[str]
    namespace: str


class Doctor(TypedDict):
    """What `kflow.doctor()` found."""

    backend: str
    cluster_configured: bool
    connection: Optional[Connection]
    kinds: List[str]
    notebook: Optional[str]
    can_submit: Optional[bool]
    problem: Optional[str]
    notes: List[str]


class ReplicaStatusDict(TypedDict):
    name: str
    phase: str
    exit_code: Optional[int]


class StatusDict(TypedDict):
    phase: str
    reason: Optional[str]
    message: Optional[str]
    replicas: List[ReplicaStatusDict]
    started_at: Optional[str]
    finished_at: Optional[str]


class Condition(TypedDict):
    type: str
    status: str
    reason: Optional[str]
    message: Optional[str]
    last_transition_time: Optional[str]


class PodInfo(TypedDict):
    name: str
    replica: Optional[str]
    phase: str
    node: Optional[str]
    state: Optional[str]
    reason: Optional[str]
    message: Optional[str]
    exit_code: Optional[int]
    restarts: int


class EventInfo(TypedDict):
    object: str
    type: str
    reason: str
    message: str
    count: int
    last_seen: Optional[str]


class Description(TypedDict):
    """What `Job.describe()` shows: the cluster-only parts are empty for a local run."""

    name: str
    kind: str
    backend: str
    namespace: Optional[str]
    spec: Dict[str, object]
    status: StatusDict
    conditions: List[Condition]
    pods: List[PodInfo]
    events: List[EventInfo]
    logs: Dict[str, List[str]]


class Identity(TypedDict):
    """Who is signed in (`kflow.whoami()`); nothing secret."""

    signed_in: bool
    url: Optional[str]
    username: Optional[str]
    issuer: Optional[str]
    api_server: Optional[str]
    client_id: Optional[str]
    store: str
    store_description: str
    expires_at: Optional[str]
    expires_in_seconds: Optional[int]
    web_session: bool
    password_stored: bool
