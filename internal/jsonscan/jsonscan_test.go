package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// nest is v inside n arrays.
func nest(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// validCases are texts and whether json.Valid takes them.
var validCases = []struct {
	in string
	ok bool
}{
	{``, false}, {` `, false}, {`null`, true}, {` true `, true}, {`false`, true},
	{`nul`, false}, {`nullx`, false}, {`True`, false}, {`t`, false},
	{`0`, true}, {`-0`, true}, {`-`, false}, {`01`, false}, {`1.`, false}, {`1.5`, true},
	{`.5`, false}, {`1e5`, true}, {`1E+5`, true}, {`1e-05`, true}, {`1e`, false}, {`1e+`, false},
	{`-1.25e3`, true}, {`+1`, false}, {`0x1`, false}, {`1 2`, false},
	{`""`, true}, {`"a"`, true}, {`"a`, false}, {`"\"`, false}, {`"\\"`, true},
	{`"\/\b\f\n\r\t\""`, true}, {`"\u00e9\uD83D\uDE00"`, true}, {`"\u12"`, false},
	{`"\u12g4"`, false}, {`"\x"`, false}, {`"\'"`, false}, {"\"a\tb\"", false}, {"\"\x00\"", false},
	{"\"\x7f\"", true}, {"\"\xff\xfe\"", true}, {"\"\xe9t\"", true}, {`"é"`, true},
	{`[]`, true}, {`[ ]`, true}, {`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false}, {`[1,2]`, true},
	{`[`, false}, {`]`, false}, {`[[]]`, true}, {`[[]`, false},
	{`{}`, true}, {`{ }`, true}, {`{"a":1}`, true}, {`{"a" : [1, {"b":null}] }`, true},
	{`{"a"}`, false}, {`{"a":}`, false}, {`{"a":1,}`, false}, {`{a:1}`, false}, {`{1:1}`, false},
	{`{"a":1 "b":2}`, false}, {`{"a":1}}`, false}, {`{"a":1]`, false}, {`[1}`, false},
	{nest(MaxDepth, "1"), true}, {nest(MaxDepth+1, "1"), false},
	{nest(MaxDepth-1, `{"a":1}`), true}, {nest(MaxDepth-1, `{"a":[]}`), false},
}

func TestValid(t *testing.T) {
	for _, c := range validCases {
		if json.Valid([]byte(c.in)) != c.ok {
			t.Fatalf("case %.40q: json.Valid is not %v", c.in, c.ok)
		}
		if got := Valid([]byte(c.in)); got != c.ok {
			t.Errorf("Valid(%.40q) = %v, want %v", c.in, got, c.ok)
		}
	}
}

// TestValueRoom: room is the number of containers a value may open.
func TestValueRoom(t *testing.T) {
	for _, c := range []struct {
		in   string
		room int
		ok   bool
	}{
		{`1`, 0, true}, {`"x"`, 0, true}, {`[]`, 0, false}, {`{}`, 0, false},
		{`[]`, 1, true}, {`[[]]`, 1, false}, {`[{}]`, 1, false}, {`{"a":[]}`, 1, false},
		{`{"a":[]}`, 2, true}, {nest(200, "1"), 200, true}, {nest(201, "1"), 200, false},
	} {
		b := []byte(c.in)
		end, ok := Value(b, 0, c.room)
		if ok != c.ok || ok && end != len(b) {
			t.Errorf("Value(%.40q, room %d) = %d, %v; want %v", c.in, c.room, end, ok, c.ok)
		}
	}
}

// TestValueEnd: Value stops right after the value, leaving what follows.
func TestValueEnd(t *testing.T) {
	for _, c := range []struct {
		in  string
		end int
	}{
		{`1,`, 1}, {`-12.5e3]`, 7}, {`"a\"b" :`, 6}, {`[1, 2] x`, 6}, {`{"a":{}}}`, 8}, {`true false`, 4},
	} {
		if end, ok := Value([]byte(c.in), 0, MaxDepth); !ok || end != c.end {
			t.Errorf("Value(%q) = %d, %v; want %d, true", c.in, end, ok, c.end)
		}
	}
}

func TestStringFlags(t *testing.T) {
	for _, c := range []struct {
		in string
		f  Flags
	}{
		{`"abc"`, 0}, {`"a\nb"`, Escaped}, {`"é"`, NonASCII}, {"\"\xff\"", NonASCII},
		{`"é\u00e9"`, Escaped | NonASCII}, {"\"\\u00e9\xff\"", Escaped | NonASCII},
	} {
		end, f, ok := String([]byte(c.in), 0)
		if !ok || end != len(c.in) || f != c.f {
			t.Errorf("String(%q) = %d, %b, %v; want %d, %b, true", c.in, end, f, ok, len(c.in), c.f)
		}
	}
}

// unquoteCases: escapes of every kind, surrogates whole, lone and
// misordered, invalid UTF-8, and texts that are not one string.
var unquoteCases = []string{
	`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0000"`, `"\u00e9\u00E9"`, `"\u2028"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\uDFFF\uD800"`,
	`"\ud83d\ud83d\ude00"`, `"\uffff"`, `"\u12"`, `"\u12g4"`, `"\x"`, `"\'"`, `"a\"`, `"`, `"a`, `a"`,
	`x`, `1`, `null`, `[]`, `"é\u00e9"`, "\"\xff\"", "\"\xe9t\\u00e9\"", "\"\xed\xa0\x80\"", "\"\xf0\x9f\x98\"",
	"\"a\tb\"", "\"a\x00\"", "\"\x7f\"", `"a\\nb\\"`, `"x" `, ` "x"`, `"a""b"`,
}

func TestUnquote(t *testing.T) {
	for _, s := range unquoteCases {
		checkUnquote(t, []byte(s))
	}
}

// checkUnquote holds Unquote to json.Unmarshal into a string.
func checkUnquote(t *testing.T, raw []byte) {
	t.Helper()
	var want string
	werr := json.Unmarshal(raw, &want)
	isString := len(raw) > 0 && raw[0] == '"' && raw[len(raw)-1] == '"'
	got, ok := Unquote([]byte("pre"), raw)
	switch {
	case !ok && string(got) != "pre":
		t.Errorf("Unquote(%q) failed but wrote %q", raw, got)
	case isString && ok != (werr == nil):
		t.Errorf("Unquote(%q) ok = %v; json.Unmarshal: %v", raw, ok, werr)
	case ok && (werr != nil || string(got) != "pre"+want):
		t.Errorf("Unquote(%q) = %q; json.Unmarshal %q, %v", raw, got[3:], want, werr)
	}
}

// FuzzScan holds Valid to json.Valid, Value's end to the end of the
// value json.Decoder reads, and Unquote to json.Unmarshal into a string.
func FuzzScan(f *testing.F) {
	for _, c := range validCases {
		if len(c.in) < 1000 {
			f.Add([]byte(c.in))
		}
	}
	for _, s := range unquoteCases {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"contacts":[{"id":"c1","dateUpdated":"2024-01-02T03:04:05Z","tags":["a","\u00e9"]}],"total":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if got := Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v; json.Valid %v", b, got, want)
		}
		if want {
			// a valid text is one value: Value ends where its trailing
			// whitespace starts
			i := SkipWS(b, 0)
			end, ok := Value(b, i, MaxDepth)
			var raw json.RawMessage
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			if !ok || string(b[i:end]) != string(raw) {
				t.Fatalf("Value(%q) = %q, %v; want %q", b, b[i:end], ok, raw)
			}
		}
		checkUnquote(t, b)
		if i := SkipWS(b, 0); i < len(b) && b[i] == '"' {
			if end, _, ok := String(b, i); ok {
				checkUnquote(t, b[i:end])
			}
		}
	})
}
