package load

// LocationStats are one location's request counters in one run, stored as
// JSON in the runs table's locations column.
type LocationStats struct {
	Requests       int64  `json:"requests"`
	Retries        int64  `json:"retries"`
	RateLimited    int64  `json:"rate_limited"` // 429 answers
	Failures       int64  `json:"failures"`     // 5xx and transport failures
	WaitMs         int64  `json:"wait_ms"`      // waiting on the rate governor and backoff
	QuotaUsed      int64  `json:"quota_used"`   // of the daily quota, as the headers told it
	DailyRemaining int64  `json:"daily_remaining"`
	Stopped        string `json:"stopped,omitempty"` // why the location stopped early, e.g. "quota"
}
