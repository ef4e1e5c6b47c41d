package event

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// reportCPU reports the process CPU time per op (and per unit, when n > 1)
// since start; see processCPU.
func reportCPU(b *testing.B, start time.Duration, n int) {
	end, ok := processCPU()
	if !ok {
		return
	}
	perOp := float64(end-start) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/op")
	if n > 1 {
		b.ReportMetric(perOp/float64(n), "cpu-ns/event")
	}
}

// BenchmarkDecode decodes and validates one typical event: every field but
// attrs.
func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(DefaultLimits())
	data := []byte(typicalEvent)
	var ev Event
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu, _ := processCPU()
	for b.Loop() {
		if err := d.Decode(data, "api", testNow, &ev); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, 1)
}

// BenchmarkDecodeAttrs adds four attrs to the typical event.
func BenchmarkDecodeAttrs(b *testing.B) {
	d := NewDecoder(DefaultLimits())
	data := []byte(strings.TrimSuffix(typicalEvent, "}") +
		`,"attrs":{"region":"eu-west-1","tls":"1.3","auth":"password","tenant":"t-42"}}`)
	var ev Event
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu, _ := processCPU()
	for b.Loop() {
		if err := d.Decode(data, "api", testNow, &ev); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, 1)
}

// BenchmarkDecodeReject measures a typical rejection (an unknown field).
func BenchmarkDecodeReject(b *testing.B) {
	d := NewDecoder(DefaultLimits())
	data := []byte(strings.Replace(typicalEvent, `"user":`, `"username":`, 1))
	var ev Event
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(data, "api", testNow, &ev); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkDecodeMessage decodes an NDJSON message of 100 typical events.
func BenchmarkDecodeMessage(b *testing.B) { benchDecodeMessage(b, false) }

// BenchmarkDecodeMessageAliasing is BenchmarkDecodeMessage with
// SetAliasing, as ingest decodes.
func BenchmarkDecodeMessageAliasing(b *testing.B) { benchDecodeMessage(b, true) }

func benchDecodeMessage(b *testing.B, alias bool) {
	const events = 100
	var msg bytes.Buffer
	for i := range events {
		msg.WriteString(strings.Replace(typicalEvent, "5f0c1a9e", strconv.Itoa(10000000+i), 1))
		msg.WriteByte('\n')
	}
	d := NewDecoder(DefaultLimits())
	d.SetAliasing(alias)
	data := msg.Bytes()
	ok := func(*Event) {}
	reject := func(err *RejectError, _ []byte) { b.Fatal(err) }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu, _ := processCPU()
	for b.Loop() {
		if valid, _ := d.DecodeMessage(data, "api", testNow, ok, reject); valid != events {
			b.Fatalf("%d valid", valid)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	reportCPU(b, cpu, events)
}

func BenchmarkParseTimestamp(b *testing.B) {
	ts := []byte("2025-06-01T11:59:58.123+02:00")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseTimestamp(ts); !ok {
			b.Fatal("rejected")
		}
	}
}
