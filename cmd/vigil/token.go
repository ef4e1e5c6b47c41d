package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/vigil-sec/vigil/admin"
)

// runToken implements `vigil token new --name N --scopes read,write`: it
// makes a random admin API token, prints it once, and prints the config
// entry holding only its SHA-256.
func runToken(_ context.Context, s streams, args []string) int {
	if len(args) == 0 {
		tokenUsage(s.stderr)
		return 2
	}
	switch args[0] {
	case "new":
		return runTokenNew(s, args[1:])
	case "-h", "--help", "help":
		tokenUsage(s.stderr)
		return 0
	}
	fmt.Fprintf(s.stderr, "vigil token: unknown subcommand %q; run 'vigil token help'\n", args[0])
	return 2
}

func tokenUsage(w io.Writer) {
	fmt.Fprintln(w, `Usage: vigil token new --name NAME --scopes SCOPES

Makes a random admin API token, prints it once, and prints the entry to add
under admin.tokens in the config; only the token's SHA-256 is stored there.
Scopes: read (GET endpoints), write (silences, reload), admin (everything).`)
}

func runTokenNew(s streams, args []string) int {
	fs := flag.NewFlagSet("vigil token new", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	name := fs.String("name", "", "name of the token, shown in logs and audit lines (required)")
	scopeList := fs.String("scopes", "", "comma-separated scopes: read, write, admin (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := checkTokenArgs(fs, *name, *scopeList); err != nil {
		fmt.Fprintf(s.stderr, "vigil token new: %v\n", err)
		return 2
	}
	scopes, err := admin.ParseScopes(*scopeList)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil token new: --scopes: %v\n", err)
		return 2
	}
	token, hash := admin.NewToken()
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	list := strings.Join(names, ", ")
	fmt.Fprintf(s.stdout, `New admin API token %q (scopes: %s).

The token, shown only this once; store it in your secret manager now:

    %s

Add this entry under admin.tokens in the config, then reload Vigil
(SIGHUP, or POST /api/v1/reload with a write token):

  - name: %s
    sha256: %s
    scopes: [%s]

To keep the hash out of the config file, write it to a file and use
sha256_file: PATH instead of sha256. To revoke the token, remove the entry
and reload.
`, *name, list, token, *name, hash, list)
	return 0
}

func checkTokenArgs(fs *flag.FlagSet, name, scopes string) error {
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q; give everything as flags", fs.Arg(0))
	case name == "":
		return errors.New("--name is required, e.g. --name grafana-reader")
	case scopes == "":
		return errors.New("--scopes is required, e.g. --scopes read or --scopes read,write")
	}
	return admin.ValidateTokenName(name)
}
