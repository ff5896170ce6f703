"""Health endpoints (/healthz/live, /healthz) and the scheduler's heartbeat."""
