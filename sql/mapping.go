package sql

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"gopkg.in/yaml.v3"
)

// defaultMapping is mapping.yaml, the mapping every warehouse starts from.
//
//go:embed mapping.yaml
var defaultMapping []byte

// Column types of a mapping.
const (
	TypeString    = "string"
	TypeInt       = "int"
	TypeFloat     = "float"
	TypeBool      = "bool"
	TypeTimestamp = "timestamp"
	TypeDate      = "date"
	TypeStrings   = "strings" // list of strings
	TypeJSON      = "json"    // JSON text
)

// Computed columns: values that are not one JSON field.
const (
	ComputeParent     = "parent_contact" // the request path's contact, else the body's contactId
	ComputeTaskStatus = "task_status"    // TaskStatus of completed and due_date
	ComputeTimeZone   = "time_zone"      // the zone zone-less times were read in
	ComputeExtra      = "extra"          // the fields no column names, as a JSON object
)

// Normalisers. Each keeps the field as sent in the column that maps it
// without a normaliser; the normalised value goes to its own column.
const (
	NormTrim      = "trim"
	NormEmail     = "email"
	NormEmailOK   = "email_valid"
	NormPhoneE164 = "phone_e164"
	NormPhoneExt  = "phone_extension"
	NormTags      = "tags"
)

var arrowTypes = map[string]arrow.DataType{
	TypeString: str, TypeInt: i64, TypeFloat: arrow.PrimitiveTypes.Float64, TypeBool: bln,
	TypeTimestamp: ts, TypeDate: date, TypeStrings: strs, TypeJSON: str,
}

var normTypes = map[string][]string{
	NormTrim: {TypeString}, NormEmail: {TypeString}, NormEmailOK: {TypeBool}, NormPhoneE164: {TypeString},
	NormPhoneExt: {TypeString}, NormTags: {TypeStrings},
}

var computeTypes = map[string]string{
	ComputeParent: TypeString, ComputeTaskStatus: TypeString, ComputeTimeZone: TypeString, ComputeExtra: TypeJSON,
}

// Paths is a column's source: one JSON field or dotted path, or a list of
// them tried in order (the first present wins). YAML takes a string or a list.
type Paths []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Paths) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*p = Paths{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*p = l
	return nil
}

// Column maps one source value to one warehouse column.
type Column struct {
	Name string `yaml:"name"`
	// Was is the column's former name: a warehouse holding it is
	// migrated by renaming it.
	Was         string `yaml:"was,omitempty"`
	From        Paths  `yaml:"from,omitempty"`
	CustomField string `yaml:"custom_field,omitempty"`
	Compute     string `yaml:"compute,omitempty"`
	Type        string `yaml:"type"`
	Normalize   string `yaml:"normalize,omitempty"`
	// RegionFrom names the column whose value is the default region of a
	// phone number (an ISO 3166 alpha-2 code).
	RegionFrom string `yaml:"region_from,omitempty"`
	// Zone of zone-less times: "utc" (default) or "location".
	Zone string `yaml:"zone,omitempty"`
	// Shape of a JSON column: object, array or any (default).
	Shape     string `yaml:"shape,omitempty"`
	EmptyNull bool   `yaml:"empty_null,omitempty"`
	// Default of a bool column when the field is absent (else NULL).
	Default     *bool  `yaml:"default,omitempty"`
	Description string `yaml:"description,omitempty"`
}

// TableMap is the mapping of one table.
type TableMap struct {
	Description string   `yaml:"description,omitempty"`
	SystemAfter string   `yaml:"system_after,omitempty"`
	Ignore      []string `yaml:"ignore,omitempty"`
	Columns     []Column `yaml:"columns"`
}

// Mapping is the declarative mapping of every data table.
type Mapping struct {
	Version int `yaml:"version"`
	// DefaultRegion is the region of phone numbers without a country.
	DefaultRegion string               `yaml:"default_region,omitempty"`
	Tables        map[string]*TableMap `yaml:"tables"`
}

// DefaultMapping returns a fresh copy of the embedded mapping.
func DefaultMapping() *Mapping {
	m, err := parseMapping(defaultMapping)
	if err != nil {
		panic("sql: embedded mapping.yaml: " + err.Error())
	}
	if err := m.Validate(); err != nil {
		panic("sql: embedded mapping.yaml: " + err.Error())
	}
	return m
}

func parseMapping(b []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// LoadMapping reads a user mapping file and merges it over the default:
// per table, a column whose name or was names a default column changes
// that column (the fields it sets replace the default's; a rename keeps the
// column's place), any other column is added at the end of the table;
// description, system_after and ignore replace the default's when set.
// The result is validated.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	user, err := parseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	m, err := DefaultMapping().Merge(user)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, nil
}

// Merge returns m with user's tables merged over it (see LoadMapping).
func (m *Mapping) Merge(user *Mapping) (*Mapping, error) {
	if user.DefaultRegion != "" {
		m.DefaultRegion = user.DefaultRegion
	}
	for name, ut := range user.Tables {
		t, ok := m.Tables[name]
		if !ok || ut == nil {
			return nil, fmt.Errorf("unknown table %q (tables: %s)", name, strings.Join(dataNames, ", "))
		}
		if ut.Description != "" {
			t.Description = ut.Description
		}
		if ut.SystemAfter != "" {
			t.SystemAfter = ut.SystemAfter
		}
		if ut.Ignore != nil {
			t.Ignore = ut.Ignore
		}
		for _, uc := range ut.Columns {
			i := slices.IndexFunc(t.Columns, func(c Column) bool {
				return c.Name == uc.Name || (uc.Was != "" && c.Name == uc.Was)
			})
			if i < 0 {
				t.Columns = append(t.Columns, uc)
				continue
			}
			c := &t.Columns[i]
			if uc.Was != "" && c.Name == uc.Was && reserved(name, uc.Was) {
				return nil, fmt.Errorf("%s.%s cannot be renamed: the analyst views or the loader read it (map the field to a new column as well instead)", name, uc.Was)
			}
			if uc.Was != "" && c.Name == uc.Was {
				if c.Name == t.SystemAfter {
					t.SystemAfter = uc.Name
				}
				c.Was = uc.Was
				c.Name = uc.Name
			}
			if uc.From != nil || uc.CustomField != "" || uc.Compute != "" {
				c.From, c.CustomField, c.Compute = uc.From, uc.CustomField, uc.Compute
				c.Normalize, c.RegionFrom = "", ""
			}
			if uc.Type != "" {
				if uc.Type != c.Type {
					return nil, fmt.Errorf("%s.%s: type %s cannot change to %s in place (map the field to a new column)",
						name, c.Name, c.Type, uc.Type)
				}
			}
			set := func(dst *string, v string) {
				if v != "" {
					*dst = v
				}
			}
			set(&c.Normalize, uc.Normalize)
			set(&c.RegionFrom, uc.RegionFrom)
			set(&c.Zone, uc.Zone)
			set(&c.Shape, uc.Shape)
			set(&c.Description, uc.Description)
			if uc.Default != nil {
				c.Default = uc.Default
			}
			c.EmptyNull = c.EmptyNull || uc.EmptyNull
		}
	}
	return m, m.Validate()
}

var (
	identRE  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	regionRE = regexp.MustCompile(`^[A-Z]{2}$`)
)

// dataNames are the tables a mapping describes, with their key columns.
var (
	dataNames = []string{"contacts", "tasks", "notes", "appointments"}
	keyCols   = map[string]string{"contacts": "contact_id", "tasks": "task_id", "notes": "note_id", "appointments": "appointment_id"}
)

// Validate checks every rule a mapping must keep, naming the table and
// column at fault.
func (m *Mapping) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.DefaultRegion != "" && !regionRE.MatchString(m.DefaultRegion) {
		bad("default_region %q: want an ISO 3166 alpha-2 code such as US", m.DefaultRegion)
	}
	for _, name := range dataNames {
		if m.Tables[name] == nil {
			bad("table %s is missing", name)
		}
	}
	for name, t := range m.Tables {
		key, ok := keyCols[name]
		if !ok {
			bad("unknown table %q", name)
			continue
		}
		seen := map[string]bool{}
		for i, c := range t.Columns {
			where := fmt.Sprintf("%s.%s", name, c.Name)
			switch {
			case !identRE.MatchString(c.Name):
				bad("%s column %d: name %q: want lower-case letters, digits and _", name, i+1, c.Name)
			case strings.HasPrefix(c.Name, "_") && c.Name != "_extra":
				bad("%s: names starting with _ are the system columns'", where)
			case seen[c.Name]:
				bad("%s: column named twice", where)
			}
			seen[c.Name] = true
			n := 0
			for _, set := range []bool{len(c.From) > 0, c.CustomField != "", c.Compute != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				bad("%s: want exactly one of from, custom_field and compute", where)
			}
			if c.CustomField != "" && name != "contacts" {
				bad("%s: custom fields belong to contacts", where)
			}
			for _, p := range c.From {
				if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
					bad("%s: from %q is not a field or dotted path", where, p)
				}
			}
			if _, ok := arrowTypes[c.Type]; !ok {
				bad("%s: type %q: want one of string, int, float, bool, timestamp, date, strings, json", where, c.Type)
			}
			if c.Compute != "" {
				if want, ok := computeTypes[c.Compute]; !ok {
					bad("%s: compute %q: want parent_contact, task_status, time_zone or extra", where, c.Compute)
				} else if c.Type != want {
					bad("%s: compute %s gives type %s, not %s", where, c.Compute, want, c.Type)
				}
				if c.Compute == ComputeExtra && c.Name != "_extra" {
					bad("%s: the extra column is named _extra", where)
				}
			}
			if c.Normalize != "" {
				if ok := slices.Contains(normTypes[c.Normalize], c.Type); !ok {
					if normTypes[c.Normalize] == nil {
						bad("%s: normalize %q: want trim, email, email_valid, phone_e164, phone_extension or tags", where, c.Normalize)
					} else {
						bad("%s: normalize %s needs type %s", where, c.Normalize, normTypes[c.Normalize][0])
					}
				}
			}
			if c.RegionFrom != "" && c.Normalize != NormPhoneE164 && c.Normalize != NormPhoneExt {
				bad("%s: region_from is for phone normalisers", where)
			}
			if c.Zone != "" && c.Zone != "utc" && c.Zone != "location" {
				bad("%s: zone %q: want utc or location", where, c.Zone)
			}
			if c.Shape != "" && c.Shape != "object" && c.Shape != "array" && c.Shape != "any" {
				bad("%s: shape %q: want object, array or any", where, c.Shape)
			}
			if c.Default != nil && c.Type != TypeBool {
				bad("%s: default is for bool columns", where)
			}
		}
		if len(t.Columns) == 0 || t.Columns[0].Name != key || len(t.Columns[0].From) != 1 || t.Columns[0].From[0] != "id" || t.Columns[0].Type != TypeString {
			bad("%s: the first column must be %s, a string from id", name, key)
		}
		for _, c := range t.Columns {
			if c.RegionFrom != "" && !seen[c.RegionFrom] {
				bad("%s.%s: region_from %q is not a column", name, c.Name, c.RegionFrom)
			}
		}
		if t.SystemAfter != "" && !seen[t.SystemAfter] {
			bad("%s: system_after %q is not a column", name, t.SystemAfter)
		}
	}
	return errors.Join(errs...)
}

// reserved says whether column col of table is one the exporter reads by
// name: a key, the columns the loader uses, or any column named in the
// analyst views (views.sql).
func reserved(table, col string) bool {
	switch col {
	case keyCols[table], "contact_id", "updated_at", "_extra":
		return true
	}
	v, err := Files.ReadFile(Views)
	if err != nil {
		return true
	}
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(col) + `\b`).Match(v)
}
