package emit

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := proxies(mustProxies("10.0.0.0/8", "192.0.2.1", "fd00::/8"))
	tests := []struct {
		name      string
		proxies   proxies
		peer      string
		xff       []string
		want      string // "" for no address
		wantProxy bool
	}{
		{"no proxies: the peer", nil, "203.0.113.5:4711", nil, "203.0.113.5", false},
		{"untrusted peer: X-Forwarded-For ignored", trusted, "203.0.113.5:4711", []string{"198.51.100.7"}, "203.0.113.5", false},
		{"no proxies configured: X-Forwarded-For ignored", nil, "10.0.0.1:80", []string{"198.51.100.7"}, "10.0.0.1", false},
		{"trusted peer: the client it names", trusted, "10.0.0.1:80", []string{"198.51.100.7"}, "198.51.100.7", true},
		{"spoofed left entries are skipped", trusted, "10.0.0.1:80", []string{"1.1.1.1, 198.51.100.7"}, "198.51.100.7", true},
		{"chain of trusted proxies", trusted, "10.0.0.1:80", []string{"198.51.100.7, 192.0.2.1", "10.9.9.9"}, "198.51.100.7", true},
		{"all hops trusted: the leftmost", trusted, "10.0.0.1:80", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3", true},
		{"trusted peer without header: the peer", trusted, "10.0.0.1:80", nil, "10.0.0.1", true},
		{"malformed entry stops at the last trusted hop", trusted, "10.0.0.1:80", []string{"198.51.100.7, bogus, 10.0.0.2"}, "10.0.0.2", true},
		{"empty entry stops the walk", trusted, "10.0.0.1:80", []string{"198.51.100.7,,"}, "10.0.0.1", true},
		{"entry with a port", trusted, "10.0.0.1:80", []string{"198.51.100.7:5555"}, "198.51.100.7", true},
		{"IPv6 peer and entry", trusted, "[fd00::1]:80", []string{" 2001:db8::7 "}, "2001:db8::7", true},
		{"bracketed IPv6 entry with a port", trusted, "10.0.0.1:80", []string{"[2001:db8::7]:443"}, "2001:db8::7", true},
		{"IPv4-mapped peer is unmapped", trusted, "[::ffff:10.0.0.1]:80", []string{"198.51.100.7"}, "198.51.100.7", true},
		{"zone is dropped", nil, "[fe80::1%eth0]:80", nil, "fe80::1", false},
		{"unparsable peer", trusted, "@unix", []string{"198.51.100.7"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, viaProxy := tt.proxies.clientIP(r)
			want := netip.Addr{}
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want || viaProxy != tt.wantProxy {
				t.Errorf("clientIP = %v, %v; want %v, %v", got, viaProxy, want, tt.wantProxy)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{"addresses and prefixes", []string{"10.0.0.0/8", " 192.0.2.1 ", "::1", "10.1.2.3/8"},
			[]string{"10.0.0.0/8", "192.0.2.1/32", "::1/128", "10.0.0.0/8"}, false},
		{"host name is refused", []string{"proxy.internal"}, nil, true},
		{"bad prefix is refused", []string{"10.0.0.0/33"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Errorf("got[%d] = %v, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		header   string // option value; "-" for the default
		value    string
		viaProxy bool
		want     string // "" for a generated id
	}{
		{"trusted proxy's id", "-", "edge-1", true, "edge-1"},
		{"untrusted peer's id is ignored", "-", "edge-1", false, ""},
		{"invalid id is replaced", "-", "has space", true, ""},
		{"too long id is replaced", "-", string(make([]byte, 129)), true, ""},
		{"custom header", "X-Amzn-Trace-Id", "Root=1-abc", true, "Root=1-abc"},
		{"header disabled", "", "edge-1", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &middleware{idHeader: DefaultRequestIDHeader}
			name := DefaultRequestIDHeader
			if tt.header != "-" {
				WithRequestIDHeader(tt.header)(m)
				name = tt.header
			}
			r := &http.Request{Header: http.Header{}}
			if name != "" {
				r.Header.Set(name, tt.value)
			}
			got := m.requestID(r, tt.viaProxy)
			if tt.want != "" && got != tt.want {
				t.Errorf("requestID = %q, want %q", got, tt.want)
			}
			if tt.want == "" && (got == tt.value || !validRequestID(got)) {
				t.Errorf("requestID = %q, want a generated id", got)
			}
		})
	}
}
