-- Per-location request statistics of each run, as JSON keyed by location id:
-- {"loc": {"requests": n, "retries": n, "rate_limited": n, "failures": n,
-- "wait_ms": n, "quota_used": n, "daily_remaining": n, "stopped": "..."}}.
-- Added after version 1's first release, hence the ALTER.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS locations JSON;
