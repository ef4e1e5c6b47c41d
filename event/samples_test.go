package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// sampleFile is the format of testdata/samples.json; testdata/README.md
// documents it for other packages.
type sampleFile struct {
	Now     time.Time `json:"now"`
	Samples []sample  `json:"samples"`
}

type sample struct {
	Name       string  `json:"name"`
	Raw        *string `json:"raw"`
	RawBase64  string  `json:"raw_base64"`
	Subject    string  `json:"subject"`
	WantValid  bool    `json:"want_valid"`
	WantReason Reason  `json:"want_reason"`
	WantField  string  `json:"want_field"`
	Schema     bool    `json:"schema"`
	Note       string  `json:"note"`
}

func (s sample) bytes(t testing.TB) []byte {
	t.Helper()
	if s.Raw != nil {
		return []byte(*s.Raw)
	}
	b, err := base64.StdEncoding.DecodeString(s.RawBase64)
	if err != nil {
		t.Fatalf("sample %q: raw_base64: %v", s.Name, err)
	}
	return b
}

func loadSamples(t testing.TB) sampleFile {
	t.Helper()
	data, err := os.ReadFile("testdata/samples.json")
	if err != nil {
		t.Fatal(err)
	}
	var f sampleFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("testdata/samples.json: %v", err)
	}
	return f
}

const schemaPath = "../docs/event-schema.json"

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	id, _ := doc.(map[string]any)["$id"].(string)
	c := jsonschema.NewCompiler()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return sch
}

// schemaCheck validates raw against the schema. A document that is not
// JSON fails with a nil *ValidationError.
func schemaCheck(sch *jsonschema.Schema, raw []byte) (bool, *jsonschema.ValidationError) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return false, nil
	}
	err = sch.Validate(doc)
	if err == nil {
		return true, nil
	}
	var ve *jsonschema.ValidationError
	errors.As(err, &ve)
	return false, ve
}

func TestSamplesGo(t *testing.T) {
	f := loadSamples(t)
	d := NewDecoder(DefaultLimits())
	for _, s := range f.Samples {
		t.Run(s.Name, func(t *testing.T) {
			var ev Event
			err := d.Decode(s.bytes(t), s.Subject, f.Now, &ev)
			if s.WantValid {
				if err != nil {
					t.Fatalf("Decode: %v, want valid", err)
				}
				assertRoundTrip(t, d, &ev, s.Subject, f.Now)
				return
			}
			var rej *RejectError
			if !errors.As(err, &rej) {
				t.Fatalf("Decode: %v, want a *RejectError", err)
			}
			if rej.Reason != s.WantReason || rej.Field != s.WantField {
				t.Fatalf("Decode: reason %q field %q (%v), want %q field %q",
					rej.Reason, rej.Field, rej, s.WantReason, s.WantField)
			}
		})
	}
}

// TestSamplesSchema runs the table through docs/event-schema.json. Where the
// table says the schema can express a rule, its verdict must match; where it
// cannot, the schema must accept (so the table marks every real gap, and no
// more).
func TestSamplesSchema(t *testing.T) {
	f := loadSamples(t)
	sch := compileSchema(t)
	for _, s := range f.Samples {
		t.Run(s.Name, func(t *testing.T) {
			ok, verr := schemaCheck(sch, s.bytes(t))
			if !s.Schema {
				if s.WantValid {
					t.Fatal("a valid sample must be marked schema: true")
				}
				if !ok {
					t.Fatalf("schema rejects a sample marked schema: false: %v", verr)
				}
				return
			}
			if ok != s.WantValid {
				t.Fatalf("schema says valid=%v, want %v (%v)", ok, s.WantValid, verr)
			}
			if verr != nil && s.WantField != "" {
				assertSchemaBlames(t, verr, s.WantField)
			}
		})
	}
}

// assertSchemaBlames checks that some leaf error of verr is about field.
func assertSchemaBlames(t *testing.T, verr *jsonschema.ValidationError, field string) {
	t.Helper()
	var blamed []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			blamed = append(blamed, k.Missing...)
		case *kind.AdditionalProperties:
			blamed = append(blamed, k.Properties...)
		case *kind.PropertyNames:
			// Only attrs has propertyNames. The library shares this
			// error's InstanceLocation slice with later siblings, so
			// the location cannot be trusted here.
			blamed = append(blamed, "attrs")
			return
		}
		if len(e.Causes) == 0 && len(e.InstanceLocation) > 0 {
			blamed = append(blamed, e.InstanceLocation[0])
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(verr)
	if !slices.Contains(blamed, field) {
		t.Fatalf("schema blames %q, want %q: %v", blamed, field, verr)
	}
}

// TestSampleTableCoverage keeps the table honest: enough entries, unique
// names, every reason and every field exercised.
func TestSampleTableCoverage(t *testing.T) {
	f := loadSamples(t)
	if len(f.Samples) < 40 {
		t.Fatalf("%d samples, want at least 40", len(f.Samples))
	}
	names := map[string]bool{}
	reasons := map[Reason]bool{}
	fields := map[string]bool{}
	for _, s := range f.Samples {
		if names[s.Name] {
			t.Errorf("duplicate sample name %q", s.Name)
		}
		names[s.Name] = true
		if (s.Raw == nil) == (s.RawBase64 == "") {
			t.Errorf("sample %q: set exactly one of raw and raw_base64", s.Name)
		}
		if s.WantValid != (s.WantReason == "") {
			t.Errorf("sample %q: want_reason must be empty exactly when want_valid", s.Name)
		}
		reasons[s.WantReason] = true
		fields[s.WantField] = true
	}
	for _, r := range Reasons() {
		if !reasons[r] {
			t.Errorf("no sample is rejected for %s", r)
		}
	}
	for f := range fAttrs + 1 {
		if !fields[fieldName(f)] {
			t.Errorf("no sample is rejected for field %s", fieldName(f))
		}
	}
}

// assertRoundTrip checks that ev, written with AppendJSON and decoded again,
// is equal, and that the schema would accept the written form.
func assertRoundTrip(t testing.TB, d *Decoder, ev *Event, subject string, now time.Time) {
	t.Helper()
	out := ev.AppendJSON(nil)
	// AppendJSON escapes <, > and & as \u00XX, so the output may exceed the
	// input's size limit; decode it with the largest limit.
	big := NewDecoder(Limits{MaxEventBytes: maxEventBytes, MaxFutureSkew: d.limits.MaxFutureSkew})
	var again Event
	if err := big.Decode(out, subject, now, &again); err != nil {
		t.Fatalf("decoding AppendJSON output %s: %v", out, err)
	}
	if !eventsEqual(ev, &again) {
		t.Fatalf("round trip changed the event:\n got %+v\nwant %+v\nwire %s", again, *ev, out)
	}
}

func eventsEqual(a, b *Event) bool {
	return a.Time.Equal(b.Time) && a.Service == b.Service && a.RequestID == b.RequestID &&
		a.Method == b.Method && a.Endpoint == b.Endpoint && a.Status == b.Status &&
		a.Path == b.Path && a.HasLatency == b.HasLatency && a.LatencyMS == b.LatencyMS &&
		a.SourceIP == b.SourceIP && a.User == b.User && a.ClientID == b.ClientID &&
		a.UserAgent == b.UserAgent && maps.Equal(a.Attrs, b.Attrs)
}
