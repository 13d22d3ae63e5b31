package sql

import "github.com/apache/arrow-go/v18/arrow"

// Action statuses (actions.status).
const (
	ActionPlanned   = "planned"   // read from the query, nothing sent
	ActionSent      = "sent"      // about to be sent, or sent with no answer known: check before repeating
	ActionConfirmed = "confirmed" // the API answered 2xx, or a read-back found it applied
	ActionFailed    = "failed"    // the API refused it (message, trace_id, http_status); final
)

// Actions: one row per action of `contacts-etl push`, keyed by
// (_source, action_key), action_key being a hash of the action and its
// arguments, so the same decision pushed twice is one row and is applied
// once. A row is committed before its request is sent (planned, then sent)
// and after its answer (confirmed or failed). args holds the arguments as
// JSON; target_id is the task or note written (the created one for
// creates); baseline is, for creates, how many matching records the contact
// had before the first send (a read-back that finds more knows the create
// was applied).
var Actions = Table{
	Name: "actions",
	Schema: arrow.NewSchema([]arrow.Field{
		f("action_key", str, false),
		f("action", str, false),
		f("contact_id", str, true),
		f("target_id", str, true),
		f("args", str, true),
		f("status", str, false),
		f("message", str, true),
		f("trace_id", str, true),
		f("http_status", i64, true),
		f("attempts", i64, false),
		f("baseline", i64, true),
		f("planned_at", ts, true),
		f("sent_at", ts, true),
		f("confirmed_at", ts, true),
		f(ColSource, str, false),
		f(ColLocationID, str, false),
		f(ColRunID, str, false),
		f(ColExtractedAt, ts, false),
	}, nil),
	Key:     []string{ColSource, "action_key"},
	Version: ColExtractedAt,
}
