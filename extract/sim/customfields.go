package sim

import (
	"net/http"
	"strconv"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// customFieldDefs are the custom fields every simulated location defines
// (GET /locations/{locationId}/customFields); contacts hold values of the
// first five, shaped by their data type. The last is defined and never used.
var customFieldDefs = []api.CustomFieldDef{
	{ID: "cf0Xk2LmQ9pR7sT4vW1yZ", Name: "Interest", FieldKey: "contact.interest", DataType: "TEXT", Position: 0, Model: "contact"},
	{ID: "cf1Xk2LmQ9pR7sT4vW1yZ", Name: "Lifetime value", FieldKey: "contact.lifetime_value", DataType: "NUMERICAL", Position: 1, Model: "contact"},
	{ID: "cf2Xk2LmQ9pR7sT4vW1yZ", Name: "Topics", FieldKey: "contact.topics", DataType: "MULTIPLE_OPTIONS", Position: 2, Model: "contact",
		PicklistOptions: tagPool},
	{ID: "cf3Xk2LmQ9pR7sT4vW1yZ", Name: "Renewal date", FieldKey: "contact.renewal_date", DataType: "DATE", Position: 3, Model: "contact"},
	{ID: "cf4Xk2LmQ9pR7sT4vW1yZ", Name: "Lead score", FieldKey: "contact.lead_score", DataType: "FILE_UPLOAD", Position: 4, Model: "contact"},
	{ID: "cf5Xk2LmQ9pR7sT4vW1yZ", Name: "Newsletter", FieldKey: "contact.newsletter", DataType: "CHECKBOX", Position: 5, Model: "contact",
		PicklistOptions: []string{"yes"}},
}

// CustomFieldDefs returns the custom field definitions of every location.
func CustomFieldDefs() []api.CustomFieldDef {
	return append([]api.CustomFieldDef(nil), customFieldDefs...)
}

// cfMaterial is the random material of one custom field value.
type cfMaterial struct {
	s1, s2 string
	f      float64
	n      int
}

// value is the JSON value of a field of dataType made of m.
func (m cfMaterial) value(dataType string) string {
	word := m.s1
	if word == "" {
		word = "none"
	}
	num := m.f
	if num == 0 {
		num = float64(len(m.s1)*7 + len(m.s2) + m.n)
	}
	switch dataType {
	case "NUMERICAL":
		return strconv.FormatFloat(num, 'f', -1, 64)
	case "MULTIPLE_OPTIONS":
		if m.s2 != "" && m.s2 != m.s1 {
			return `[` + strconv.Quote(word) + `,` + strconv.Quote(m.s2) + `]`
		}
		return `[` + strconv.Quote(word) + `]`
	case "DATE":
		d := int(num*100) % 336
		return `"2025-` + pad2(1+d/28) + `-` + pad2(1+d%28) + `"`
	case "FILE_UPLOAD":
		return `{"label":` + strconv.Quote(word) + `,"score":` + strconv.Itoa(int(num)%100) + `}`
	}
	return strconv.Quote(word)
}

// customFields serves GET /locations/{locationId}/customFields.
func (s *Server) customFields(r *http.Request, _ []byte, g *grant) reply {
	id := r.PathValue("locationId")
	if s.location(id) == nil || id != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	defs := make([]api.CustomFieldDef, len(customFieldDefs))
	for i, d := range customFieldDefs {
		d.LocationID = id
		defs[i] = d
	}
	return jsonReply(http.StatusOK, marshal(struct {
		CustomFields []api.CustomFieldDef `json:"customFields"`
	}{defs}))
}
