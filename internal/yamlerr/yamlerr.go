// Package yamlerr turns the errors of go.yaml.in/yaml/v3 into messages that
// name the right line. The library reports a parser error (such as "did not
// find expected key") with a zero-based line number, one less than the line
// an editor shows; scanner and decoding errors are already one-based.
// Messages corrects that, so every loader of Vigil's YAML reports lines alike.
package yamlerr

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parserProblems are the problems yaml/v3's parser (not its scanner) reports;
// their line numbers are zero-based (see the library's parser.fail).
var parserProblems = map[string]bool{
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected <document start>": true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
	"found undefined tag handle":             true,
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// Messages returns one message per problem in err, each without the
// library's "yaml: " prefix and, where the library gives a line, starting
// "line N: " with N counted from 1.
func Messages(err error) []string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = append(msgs, te.Errors...)
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(strings.TrimSpace(m), "yaml: ")
		if g := lineRE.FindStringSubmatch(m); g != nil && parserProblems[g[2]] {
			n, _ := strconv.Atoi(g[1])
			m = "line " + strconv.Itoa(n+1) + ": " + g[2]
		}
		msgs[i] = m
	}
	return msgs
}
