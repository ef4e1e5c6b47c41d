// Package rules holds Vigil's default detection rules as YAML, embedded in
// the binary so that vigil run and vigil replay work from any directory, and
// the one call that loads either them or an operator's rule directory.
// The rule tests in tests/ run with go test and with vigil rules test.
package rules

import (
	"embed"
	"io/fs"
	"os"

	"github.com/vigil-sec/vigil/detect"
)

//go:embed *.yaml
var defaults embed.FS

// FS returns the embedded default rule files.
func FS() fs.FS { return defaults }

// Load returns the compiled rules of every *.yaml/*.yml file in dir, or the
// embedded default set when dir is "". Errors name the file, line and rule.
func Load(dir string) ([]*detect.Rule, error) { return LoadWith(dir, nil) }

// LoadWith is Load with operator lists (the config's detect.lists) that
// replace or add to the lists the rule files declare.
func LoadWith(dir string, lists map[string]detect.ListSpec) ([]*detect.Rule, error) {
	if dir == "" {
		return detect.LoadFS(defaults, ".", "rules (embedded)", lists)
	}
	return detect.LoadFS(os.DirFS(dir), ".", dir, lists)
}
