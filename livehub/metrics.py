"""Prometheus metrics (``/metrics``). Every name starts with ``livehub_``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS = Gauge(
    "livehub_connections", "Open WebSocket connections on this process, by room state",
    ["state"], registry=REGISTRY,
)
ROOMS = Gauge(
    "livehub_rooms", "Rooms with listeners on this process, by room state", ["state"],
    registry=REGISTRY,
)
CONNECTIONS_REJECTED = Counter(
    "livehub_connections_rejected_total", "Connections refused or closed by the server, by reason",
    ["reason"], registry=REGISTRY,
)
REQUESTS = Counter(
    "livehub_requests_total", "Client requests by type and outcome (ok or the error code)",
    ["type", "outcome"], registry=REGISTRY,
)
EVENTS_COMMITTED = Counter(
    "livehub_events_committed_total", "Events this process committed to room logs",
    registry=REGISTRY,
)
EVENTS_APPLIED = Counter(
    "livehub_events_applied_total", "Events this process folded into its room replicas",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "livehub_deliveries_total", "Events queued to connections (fan-out deliveries)",
    registry=REGISTRY,
)
FRAMES_SENT = Counter(
    "livehub_frames_sent_total", "WebSocket frames sent to clients", registry=REGISTRY,
)
COALESCED_FRAMES = Counter(
    "livehub_coalesced_frames_total", "Frames that carried more than one event",
    registry=REGISTRY,
)
SLOW_READER_CLOSES = Counter(
    "livehub_slow_reader_closes_total", "Connections closed 1013 for a full send queue",
    registry=REGISTRY,
)
BROKER_RECONNECTS = Gauge(
    "livehub_broker_reconnects", "Times the broker reconnected since start", registry=REGISTRY,
)
BROKER_ERRORS = Counter(
    "livehub_broker_errors_total", "Broker operations that failed", ["op"], registry=REGISTRY,
)
GAP_FILLS = Counter(
    "livehub_gap_fills_total", "Sequence gaps filled from the room log", registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "livehub_commit_seconds", "Time to commit events to the broker",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "livehub_api_requests_total",
    "Organisers' HTTP API requests (transcript, announce, reload) by endpoint and status",
    ["endpoint", "status"], registry=REGISTRY,
)
PROGRAMME_RELOADS = Counter(
    "livehub_programme_reloads_total",
    "Programme reloads (SIGHUP or POST /api/programme/reload) by outcome: ok or refused",
    ["outcome"], registry=REGISTRY,
)
REFUSALS = Counter(
    "livehub_refusals_total",
    "Requests and connections refused by a fair limit (livehub.limits_log), by limit",
    ["limit"], registry=REGISTRY,
)

# Per room (bounded by the programme's sessions), as this process's replica last saw it.
OPEN_REPORTS = Gauge(
    "livehub_open_reports", "Reports not yet resolved, per room", ["room"], registry=REGISTRY,
)
HELD_POSTS = Gauge(
    "livehub_held_posts", "Posts held by the watched words awaiting a moderator, per room",
    ["room"], registry=REGISTRY,
)
