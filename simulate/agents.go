package simulate

import "math/rand/v2"

var browserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
}

// appBuilds are the mobile app builds in use; each is an API client.
var appBuilds = []struct{ client, ua string }{
	{"ios-5.12.0", "AcmeShop/5.12.0 (iPhone; iOS 18.1; Scale/3.00)"},
	{"ios-5.11.2", "AcmeShop/5.11.2 (iPhone; iOS 17.6; Scale/3.00)"},
	{"ios-5.9.0", "AcmeShop/5.9.0 (iPhone; iOS 16.7; Scale/2.00)"},
	{"android-5.12.0", "AcmeShop/5.12.0 (Android 14; Pixel 8) okhttp/4.12.0"},
	{"android-5.11.1", "AcmeShop/5.11.1 (Android 13; SM-S911B) okhttp/4.12.0"},
	{"android-5.8.3", "AcmeShop/5.8.3 (Android 11; Redmi Note 9) okhttp/4.9.3"},
}

var cliAgents = []string{"acme-cli/1.4.2 (linux; amd64)", "acme-cli/1.4.2 (darwin; arm64)",
	"acme-cli/1.3.0 (windows; amd64)", "python-requests/2.32.3", "acme-sdk-go/0.9.1"}

// agentOf draws the user agent and client id of a device.
func agentOf(r *rand.Rand, d device) (ua, client string) {
	switch d {
	case devIOS:
		b := appBuilds[r.IntN(3)]
		return b.ua, b.client
	case devAndroid:
		b := appBuilds[3+r.IntN(3)]
		return b.ua, b.client
	case devCLI:
		return pick(r, cliAgents), "cli"
	}
	return pick(r, browserAgents), "web-app"
}

// toolAgents are what attack tools send; many send a browser's instead.
var toolAgents = []string{"python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1",
	"Mozilla/5.0 (Hydra)", "okhttp/3.14.9", "python-httpx/0.27.0", "axios/1.7.2",
	"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", "Java/17.0.2"}

var scannerAgents = []string{"Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))",
	"gobuster/3.6", "Fuzz Faster U Fool v2.1.0-dev", "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:Port Check)",
	"Mozilla/5.0 zgrab/0.x", "feroxbuster/2.10.4", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"}

// attackAgent draws an attack tool's user agent: a tool's own or a
// browser's (stuffing kits copy real browsers).
func attackAgent(r *rand.Rand) string {
	if chance(r, 0.4) {
		return pick(r, browserAgents)
	}
	return pick(r, toolAgents)
}
