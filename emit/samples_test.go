package emit

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// sampleTable is the part of Vigil's sample table (event/testdata) that
// these tests use.
type sampleTable struct {
	Now     time.Time `json:"now"`
	Samples []struct {
		Name      string  `json:"name"`
		Raw       *string `json:"raw"`
		RawBase64 string  `json:"raw_base64"`
		Subject   string  `json:"subject"`
		WantValid bool    `json:"want_valid"`
	} `json:"samples"`
}

func loadSampleTable(t *testing.T) sampleTable {
	t.Helper()
	data, err := os.ReadFile("../event/testdata/samples.json")
	if err != nil {
		t.Fatal(err)
	}
	var table sampleTable
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatalf("sample table: %v", err)
	}
	for i := range table.Samples {
		s := &table.Samples[i]
		if s.Raw == nil {
			b, err := base64.StdEncoding.DecodeString(s.RawBase64)
			if err != nil {
				t.Fatalf("sample %q: %v", s.Name, err)
			}
			raw := string(b)
			s.Raw = &raw
		}
	}
	return table
}
