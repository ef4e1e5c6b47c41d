package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"time"
)

type ev struct {
	TS       time.Time `json:"ts"`
	Service  string    `json:"service"`
	Endpoint string    `json:"endpoint"`
	Status   int       `json:"status"`
	SourceIP string    `json:"source_ip"`
	User     string    `json:"user"`
}

func main() {
	f, _ := os.Open(os.Args[1])
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	win := 2 * time.Minute
	var start time.Time
	type agg struct {
		try, fail, tryU, failU map[string]bool
		logins, fails     int
	}
	nw := func() *agg {
		return &agg{map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, 0, 0}
	}
	a := nw()
	for sc.Scan() {
		var e ev
		json.Unmarshal(sc.Bytes(), &e)
		if e.Endpoint != "/v1/auth/login" {
			continue
		}
		if start.IsZero() {
			start = e.TS
		}
		for e.TS.Sub(start) >= win {
			fmt.Printf("%6.0f logins %6d fails %5d (%.3f) nets try %6d fail %5d share %.4f users fail %5d\n", start.Sub(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)).Seconds(), a.logins, a.fails, float64(a.fails)/float64(a.logins), len(a.try), len(a.fail), float64(len(a.fail))/float64(len(a.try)), len(a.failU))
			a = nw()
			start = start.Add(win)
		}
		ip, err := netip.ParseAddr(e.SourceIP)
		if err != nil {
			continue
		}
		bits := 24
		if ip.Is6() {
			bits = 64
		}
		p, _ := ip.Prefix(bits)
		n := p.String()
		if e.Status >= 500 {
			continue
		}
		a.logins++
		a.try[n] = true
		if e.Status == 401 || e.Status == 403 || e.Status == 429 {
			a.fails++
			a.fail[n] = true
			a.failU[e.User] = true
		}
	}
}
