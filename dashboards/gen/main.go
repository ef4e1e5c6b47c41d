// Command gen writes Vigil's Grafana dashboards as JSON files; it is run by
// `go generate ./dashboards`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vigil-sec/vigil/dashboards"
)

func main() {
	out := flag.String("out", "json", "directory to write the dashboard JSON files to")
	flag.Parse()
	if err := dashboards.WriteFiles(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
