// Command genrules writes deploy/kubernetes/rules-configmap.yaml from the
// default rule files; it is run by `go generate ./deploy`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vigil-sec/vigil/deploy/internal/k8srules"
)

func main() {
	rules := flag.String("rules", "../rules", "directory of the default rule files")
	out := flag.String("out", "kubernetes/rules-configmap.yaml", "file to write")
	flag.Parse()
	b, err := k8srules.Render(*rules, "vigil-rules")
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrules:", err)
		os.Exit(1)
	}
}
