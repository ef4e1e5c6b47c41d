package simulate

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-sec/vigil/event"
)

// Counts says how many events a scenario produced: in all, and per
// attack or benign pattern name (background events are counted in Events
// only).
type Counts struct {
	Events int
	ByName map[string]int
}

// WriteEvents writes the scenario's events to w as JSON lines sorted by
// ts, in the wire schema `vigil replay` reads.
func (sc *Scenario) WriteEvents(w io.Writer) (Counts, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	c := Counts{ByName: map[string]int{}}
	s := sc.Stream()
	var ev event.Event
	var buf []byte
	for {
		tag, ok := s.Next(&ev)
		if !ok {
			break
		}
		buf = append(ev.AppendJSON(buf[:0]), '\n')
		if _, err := bw.Write(buf); err != nil {
			return c, err
		}
		c.Events++
		if name, _ := sc.Item(tag); name != "" {
			c.ByName[name]++
		}
	}
	return c, bw.Flush()
}

// WriteFiles writes the events to eventsPath (gzip-compressed when the
// name ends in .gz) and the truth to truthPath.
func (sc *Scenario) WriteFiles(eventsPath, truthPath string) (Counts, error) {
	c, err := writeFile(eventsPath, func(w io.Writer) (Counts, error) {
		if !strings.HasSuffix(eventsPath, ".gz") {
			return sc.WriteEvents(w)
		}
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		c, err := sc.WriteEvents(zw)
		return c, errors.Join(err, zw.Close())
	})
	if err != nil {
		return c, err
	}
	_, err = writeFile(truthPath, func(w io.Writer) (Counts, error) { return c, WriteTruth(w, sc.Truth()) })
	return c, err
}

// writeFile creates path and fills it with write, reporting which file
// failed and why.
func writeFile(path string, write func(io.Writer) (Counts, error)) (Counts, error) {
	f, err := os.Create(path)
	if err != nil {
		return Counts{}, fmt.Errorf("create %s: %w (check that its directory exists and is writable)", path, err)
	}
	c, err := write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c, fmt.Errorf("write %s: %w", path, err)
	}
	return c, nil
}
