// Package truth compares a warehouse with the simulator's ground truth, row
// by row and field by field, for the tests of the run package and the CLI.
// It is test support: it reports through *testing.T.
package truth

import (
	dsql "database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	whsql "github.com/contacts-etl/contacts-etl/sql"
	"github.com/contacts-etl/contacts-etl/transform"
)

// The expected values are written out here from the API's records,
// independently of the transform code, except for time parsing
// (transform.ParseTime has its own tests).

// Row is one warehouse row by column name.
type Row = map[string]any

type row = Row

var jsonCols = map[string]bool{"dnd_settings": true, "custom_fields": true, "attribution_source": true}

func s(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func list(v []string) any {
	if v == nil {
		return nil
	}
	return append([]string{}, v...)
}

// tagList is what tags land as: trimmed, without empty or repeated ones, in order.
func tagList(v []string) any {
	if v == nil {
		return nil
	}
	out := []string{}
	seen := map[string]bool{}
	for _, t := range v {
		if t = strings.TrimSpace(t); t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func tsv(t *testing.T, v string, zone *time.Location) any {
	tm, err := transform.ParseTime(v, zone)
	if err != nil {
		t.Fatalf("truth has unparseable time %q", v)
	}
	if tm.IsZero() {
		return nil
	}
	return tm.Truncate(time.Microsecond)
}

func jsonv(v any) any {
	b, _ := json.Marshal(v)
	if string(b) == "null" || string(b) == "{}" || string(b) == "[]" {
		return nil
	}
	return b
}

func expectContact(t *testing.T, c api.Contact) row {
	name := c.Name
	if name == "" {
		name = c.ContactName
	}
	var dob any
	if c.DateOfBirth != "" {
		d, _ := time.Parse("2006-01-02", c.DateOfBirth[:10])
		dob = d
	}
	var custom, dnd, attr any
	if len(c.CustomFields) > 0 {
		custom = jsonv(c.CustomFields)
	}
	if len(c.DNDSettings) > 0 {
		dnd = jsonv(c.DNDSettings)
	}
	if len(c.AttributionSource) > 0 {
		attr = []byte(c.AttributionSource)
	}
	var emailNorm, emailValid, e164 any
	if strings.TrimSpace(c.Email) != "" {
		n, ok := transform.NormalizeEmail(c.Email)
		emailNorm, emailValid = s(n), ok
	}
	if c.Phone != "" {
		region := c.Country
		if len(region) != 2 || phonenumbers.GetCountryCodeForRegion(region) == 0 {
			region = "US"
		}
		if n, err := phonenumbers.Parse(c.Phone, region); err == nil && phonenumbers.IsPossibleNumberWithReason(n) == phonenumbers.IS_POSSIBLE {
			e164 = phonenumbers.Format(n, phonenumbers.E164)
		}
	}
	return row{
		"contact_id": c.ID, "location_id": s(c.LocationID), "first_name": s(strings.TrimSpace(c.FirstName)),
		"last_name": s(strings.TrimSpace(c.LastName)), "name": s(strings.TrimSpace(name)), "email": s(c.Email), "phone": s(c.Phone),
		"email_normalized": emailNorm, "email_valid": emailValid, "phone_e164": e164, "_extra": nil,
		"company_name": s(c.CompanyName), "tags": tagList(c.Tags), "lead_source": s(c.Source), "type": s(c.Type),
		"assigned_to": s(c.AssignedTo), "address1": s(c.Address1), "city": s(c.City), "state": s(c.State),
		"postal_code": s(c.PostalCode), "country": s(c.Country), "website": s(c.Website), "timezone": s(c.Timezone),
		"dnd": c.DND, "dnd_settings": dnd, "date_of_birth": dob,
		"created_at": tsv(t, c.DateAdded, time.UTC), "updated_at": tsv(t, c.DateUpdated, time.UTC),
		"last_activity": tsv(t, c.LastActivity, time.UTC), "custom_fields": custom, "attribution_source": attr,
		"additional_emails": list(c.AdditionalEmails), "additional_phones": list(c.AdditionalPhones), "followers": list(c.Followers),
	}
}

func expectTask(t *testing.T, k api.Task, contactID string) row {
	return row{
		"task_id": k.ID, "contact_id": s(contactID), "body_contact_id": s(k.ContactID), "title": s(k.Title), "body": s(k.Body),
		"assigned_to": s(k.AssignedTo), "due_date": tsv(t, k.DueDate, time.UTC), "completed": k.Completed,
	}
}

func expectNote(t *testing.T, n api.Note, contactID string) row {
	return row{
		"note_id": n.ID, "contact_id": s(contactID), "body_contact_id": s(n.ContactID), "content": s(n.Body), "user_id": s(n.UserID),
		"title": s(n.Title), "color": s(n.Color), "pinned": n.Pinned, "created_at": tsv(t, n.DateAdded, time.UTC),
	}
}

// expectEvent is an appointment's row; its times are the true instants the
// simulator knows (zone-less times are in the location's zone).
func expectEvent(t *testing.T, e api.Event, et sim.EventTime, contactID string) row {
	r := row{
		"appointment_id": e.ID, "contact_id": s(contactID), "body_contact_id": s(e.ContactID), "calendar_id": s(e.CalendarID),
		"title": s(e.Title), "status": s(e.Status), "appointment_status": s(e.AppointmentStatus),
		"assigned_user_id": s(e.AssignedUserID), "attendees": list(e.Users), "notes": s(e.Notes), "address": s(e.Address),
		"group_id": s(e.GroupID), "start_time": instant(et.Start), "end_time": instant(et.End),
		"created_at": tsv(t, e.DateAdded, time.UTC), "updated_at": tsv(t, e.DateUpdated, time.UTC),
	}
	if et.Zone != "" {
		r["time_zone"] = et.Zone
	}
	return r
}

func instant(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Tables builds the expected rows of every table, keyed by table then id,
// leaving out deleted contacts and the records the simulator spoilt beyond
// use (whole rejects); records served with odd fields land with those
// columns NULL (or mended).
func Tables(t *testing.T, srv *sim.Server, locations []string) map[string]map[string]row {
	bad := map[string]bool{}
	noID := map[string]bool{} // contacts served without an id: their children can't be asked for
	for _, b := range srv.ExpectedRejects() {
		if !b.Whole() {
			continue
		}
		if b.Resource == api.ResourceContacts && b.Kind == sim.KindMissingID {
			noID[b.ID] = true
		}
		if b.ID != "" {
			bad[b.Resource+"|"+b.ID] = true
		} else {
			bad[b.Resource+"|list|"+b.ContactID] = true
		}
	}
	odd := map[string][]sim.OddField{}
	for _, f := range srv.ExpectedFieldRejects() {
		odd[f.Resource+"|"+f.ID] = f.Fields
	}
	bodyIDs := srv.BodyContactIDs()
	out := map[string]map[string]row{"contacts": {}, "tasks": {}, "notes": {}, "appointments": {}}
	add := func(table, loc, id string, r row) {
		r["_location_id"] = loc
		for _, f := range odd[table+"|"+id] {
			if f.Landed {
				r[f.Column] = f.Value
				continue
			}
			r[f.Column] = nil
			// so are the columns normalised from the field
			if t, ok := whsql.ByName(table); ok {
				for _, c := range t.Cols {
					if c != nil && len(c.From) > 0 && c.From[0] == f.Field {
						r[c.Name] = nil
					}
				}
			}
		}
		if t, ok := whsql.ByName(table); ok { // columns the mapping in use renamed
			for _, rn := range t.Renames() {
				if v, ok := r[rn[0]]; ok {
					r[rn[1]] = v
					delete(r, rn[0])
				}
			}
		}
		if table != api.ResourceContacts {
			if b, ok := bodyIDs[id]; ok {
				r["body_contact_id"] = b
			}
		}
		out[table][id] = r
	}
	for _, loc := range locations {
		for _, ct := range srv.Truth(loc) {
			c := ct.Contact
			if ct.Deleted {
				continue
			}
			if noID[c.ID] {
				ct.Tasks, ct.Notes, ct.Events = nil, nil, nil
			}
			if !bad["contacts|"+c.ID] {
				add("contacts", loc, c.ID, expectContact(t, c))
			}
			if !bad["tasks|list|"+c.ID] {
				for _, k := range ct.Tasks {
					if !bad["tasks|"+k.ID] {
						add("tasks", loc, k.ID, expectTask(t, k, c.ID))
					}
				}
			}
			if !bad["notes|list|"+c.ID] {
				for _, n := range ct.Notes {
					if !bad["notes|"+n.ID] {
						add("notes", loc, n.ID, expectNote(t, n, c.ID))
					}
				}
			}
			for i, e := range ct.Events {
				if !bad["appointments|"+e.ID] {
					var et sim.EventTime
					if i < len(ct.EventTimes) {
						et = ct.EventTimes[i]
					}
					add("appointments", loc, e.ID, expectEvent(t, e, et, c.ID))
				}
			}
		}
	}
	return out
}

// deletedTruth lists, per table, the ids of deleted contacts and of their
// children, and of children deleted from live contacts: the warehouse may hold them only soft-deleted (_deleted_at
// set), or not at all if they were deleted before ever being exported.
func deletedTruth(srv *sim.Server, locations []string) map[string]map[string]bool {
	out := map[string]map[string]bool{"contacts": {}, "tasks": {}, "notes": {}, "appointments": {}}
	for _, loc := range locations {
		for _, ct := range srv.Truth(loc) {
			for res, ids := range ct.Gone {
				for _, id := range ids {
					out[res][id] = true
				}
			}
			if !ct.Deleted {
				continue
			}
			out["contacts"][ct.Contact.ID] = true
			for _, k := range ct.Tasks {
				out["tasks"][k.ID] = true
			}
			for _, n := range ct.Notes {
				out["notes"][n.ID] = true
			}
			for _, e := range ct.Events {
				out["appointments"][e.ID] = true
			}
		}
	}
	return out
}

var keyCol = map[string]string{"contacts": "contact_id", "tasks": "task_id", "notes": "note_id", "appointments": "appointment_id"}

// ReadTable reads every row of a table, keyed by id, values normalised for
// comparison (times in UTC, lists as []string, JSON text as canonical JSON).
func ReadTable(t *testing.T, db *dsql.DB, table, source string) map[string]row {
	t.Helper()
	rows, err := db.Query(fmt.Sprintf("SELECT * FROM %s WHERE _source = ?", table), source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]row{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := row{}
		for i, c := range cols {
			r[c] = normActual(c, vals[i])
		}
		id := r[keyCol[table]].(string)
		if _, dup := out[id]; dup {
			t.Errorf("%s: duplicate key %s", table, id)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func normActual(col string, v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC()
	case []any:
		ss := make([]string, len(v))
		for i, e := range v {
			ss[i] = fmt.Sprint(e)
		}
		return ss
	case string:
		if jsonCols[col] {
			return []byte(v)
		}
	}
	return v
}

func SameValue(col string, want, got any) bool {
	if jsonCols[col] && want != nil && got != nil {
		var a, b any
		if json.Unmarshal(want.([]byte), &a) != nil || json.Unmarshal(got.([]byte), &b) != nil {
			return false
		}
		return reflect.DeepEqual(a, b)
	}
	return reflect.DeepEqual(want, got)
}

// CompareWarehouse asserts that the warehouse at path holds exactly the
// simulator's truth for locations, and returns the rows counted per table.
func CompareWarehouse(t *testing.T, srv *sim.Server, path, source string, locations []string) map[string]int {
	t.Helper()
	db := OpenRO(t, path)
	defer db.Close()
	return CompareDB(t, srv, db, source, locations)
}

// CompareDB is CompareWarehouse on an open database (a DuckDB file, or the
// views of a Parquet warehouse).
func CompareDB(t *testing.T, srv *sim.Server, db *dsql.DB, source string, locations []string) map[string]int {
	t.Helper()
	want := Tables(t, srv, locations)
	gone := deletedTruth(srv, locations)
	counts := map[string]int{}
	for _, table := range []string{"contacts", "tasks", "notes", "appointments"} {
		got := ReadTable(t, db, table, source)
		counts[table] = len(got)
		diffs := 0
		report := func(format string, args ...any) {
			if diffs++; diffs <= 10 {
				t.Errorf(table+": "+format, args...)
			}
		}
		for id, w := range want[table] {
			g, ok := got[id]
			if !ok {
				report("missing %s", id)
				continue
			}
			for col, wv := range w {
				if !SameValue(col, wv, g[col]) {
					report("%s.%s = %#v, want %#v", id, col, g[col], wv)
				}
			}
			if g["_source"] != source || g["_deleted_at"] != nil || g["_run_id"] == nil {
				report("%s system columns %v %v %v", id, g["_source"], g["_deleted_at"], g["_run_id"])
			}
			if table == "tasks" {
				done, known := w["completed"].(bool)
				due, _ := w["due_date"].(time.Time)
				var want any // an unreadable completed has no status
				if known {
					want = transform.TaskStatus(done, due, g["_extracted_at"].(time.Time))
				}
				if g["status"] != want {
					report("%s.status = %v, want %v", id, g["status"], want)
				}
			}
		}
		for id, g := range got {
			if _, ok := want[table][id]; ok {
				continue
			}
			switch {
			case !gone[table][id]:
				report("unexpected row %s", id)
			case g["_deleted_at"] == nil:
				report("deleted upstream but not soft-deleted: %s", id)
			default:
				counts[table+"_deleted"]++
			}
		}
		counts[table] -= counts[table+"_deleted"]
		if diffs > 10 {
			t.Errorf("%s: %d differences in all", table, diffs)
		}
	}
	checkRejects(t, db, srv, source)
	counts["contact_custom_fields"] = checkCustomFields(t, db, srv, source, locations, want["contacts"])
	return counts
}

// checkRejects asserts that the rejects table names each record spoilt
// beyond use once, and field_rejects each odd field of the records that
// landed (both are keyed: a re-read replaces, it does not append).
func checkRejects(t *testing.T, db *dsql.DB, srv *sim.Server, source string) {
	t.Helper()
	var want []string
	for _, b := range srv.ExpectedRejects() {
		if !b.Whole() {
			continue
		}
		id := b.ID
		if b.Kind == sim.KindMissingID || b.Kind == sim.KindMalformedList {
			id = ""
		}
		want = append(want, b.Resource+"|"+b.ContactID+"|"+id)
	}
	got := queryStrings(t, db, `SELECT resource, coalesce(contact_id,''), coalesce(record_id,''), reason FROM rejects WHERE _source = ?`, source)
	sort.Strings(want)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("rejects:\n got %v\nwant %v", got, want)
	}
	want = want[:0]
	for _, f := range srv.ExpectedFieldRejects() {
		for _, of := range f.Fields {
			want = append(want, f.Resource+"|"+f.ContactID+"|"+f.ID+"|"+of.Field)
		}
	}
	got = queryStrings(t, db, `SELECT resource, coalesce(contact_id,''), record_id, field, reason FROM field_rejects WHERE _source = ?`, source)
	sort.Strings(want)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("field rejects:\n got %v\nwant %v", got, want)
	}
}

// queryStrings returns the rows of q, all but the last column joined by
// "|" (the last is a reason, which must not be empty), sorted.
func queryStrings(t *testing.T, db *dsql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if vals[len(vals)-1] == "" {
			t.Errorf("%v without a reason", vals)
		}
		out = append(out, strings.Join(vals[:len(vals)-1], "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func OpenRO(t *testing.T, path string) *dsql.DB {
	t.Helper()
	db, err := dsql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// checkCustomFields asserts that contact_custom_fields holds one live row
// per custom field value of each landed contact (the first of an id named
// twice), with the value as JSON; where custom_field_definitions has the
// location's definitions, with the field's key, name and data type too.
// It returns the rows counted.
func checkCustomFields(t *testing.T, db *dsql.DB, srv *sim.Server, source string, locations []string, contacts map[string]row) int {
	t.Helper()
	defs := map[string]bool{}
	for _, l := range queryStrings(t, db, `SELECT DISTINCT _location_id, 'r' FROM custom_field_definitions WHERE _source = ?`, source) {
		defs[l] = true
	}
	byID := map[string]api.CustomFieldDef{}
	for _, d := range sim.CustomFieldDefs() {
		byID[d.ID] = d
	}
	var want []string
	for _, loc := range locations {
		for _, ct := range srv.Truth(loc) {
			c := ct.Contact
			r, ok := contacts[c.ID]
			if !ok || ct.Deleted || r["custom_fields"] == nil {
				continue
			}
			seen := map[string]bool{}
			for _, cf := range c.CustomFields {
				if seen[cf.ID] {
					continue
				}
				seen[cf.ID] = true
				var v any
				if json.Unmarshal(cf.Value, &v) != nil {
					t.Fatalf("truth has a custom field value that is not JSON: %s", cf.Value)
				}
				js, _ := json.Marshal(v)
				key := ""
				if d, ok := byID[cf.ID]; ok && defs[loc] {
					key = d.FieldKey + "/" + d.Name + "/" + d.DataType
				}
				want = append(want, c.ID+"|"+cf.ID+"|"+string(js)+"|"+key)
			}
		}
	}
	rows, err := db.Query(`SELECT contact_id, field_id, value_json, coalesce(field_key || '/' || field_name || '/' || data_type, '')
		FROM contact_custom_fields WHERE _source = ? AND _deleted_at IS NULL`, source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var c, f, key string
		var js dsql.NullString
		if err := rows.Scan(&c, &f, &js, &key); err != nil {
			t.Fatal(err)
		}
		var v any
		if js.Valid {
			if err := json.Unmarshal([]byte(js.String), &v); err != nil {
				t.Errorf("contact_custom_fields %s/%s: value_json %q: %v", c, f, js.String, err)
			}
		}
		b, _ := json.Marshal(v)
		got = append(got, c+"|"+f+"|"+string(b)+"|"+key)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !reflect.DeepEqual(want, got) {
		n := 0
		gs := map[string]bool{}
		for _, g := range got {
			gs[g] = true
		}
		for _, w := range want {
			if !gs[w] && n < 5 {
				t.Errorf("contact_custom_fields: missing %s", w)
				n++
			}
		}
		t.Errorf("contact_custom_fields: %d rows, want %d", len(got), len(want))
	}
	return len(got)
}
