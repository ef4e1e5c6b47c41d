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
// entry holding only its SHA-256, or adds that entry to a config file.
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
	fmt.Fprintln(w, `Usage: vigil token new --name NAME --scopes SCOPES [--config FILE] [--quiet]

Makes a random admin API token, prints it once, and prints the entry to add
under admin.tokens in the config; only the token's SHA-256 is stored there.
With --config FILE the entry is added to FILE (created if missing); with
--quiet only the token goes to standard output, so that
    TOKEN=$(vigil token new --name me --scopes read,write --config vigil.yaml --quiet)
works. Scopes: read (GET endpoints), write (silences, reload), admin (everything).`)
}

func runTokenNew(s streams, args []string) int {
	fs := flag.NewFlagSet("vigil token new", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	name := fs.String("name", "", "name of the token, shown in logs and audit lines (required)")
	scopeList := fs.String("scopes", "", "comma-separated scopes: read, write, admin (required)")
	configPath := fs.String("config", "", "add the token's entry to this config `file` (created if missing) instead of printing it")
	quiet := fs.Bool("quiet", false, "print only the token on standard output; everything else goes to standard error")
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
	entry := tokenEntry{name: *name, hash: hash, scopes: strings.Join(names, ", ")}
	var next string // what to do with the entry, for the messages below
	if *configPath != "" {
		if err := addTokenToConfig(*configPath, entry); err != nil {
			fmt.Fprintf(s.stderr, "vigil token new: %v\n", err)
			return 1
		}
		next = fmt.Sprintf("Added it to %s under admin.tokens (only its SHA-256); apply it with a reload\n"+
			"(SIGHUP, or POST /api/v1/reload with a write token) or start vigil run --config %s.\n", *configPath, *configPath)
	} else {
		next = fmt.Sprintf(`Add this entry under admin.tokens in the config, then reload Vigil
(SIGHUP, or POST /api/v1/reload with a write token):

%s
To keep the hash out of the config file, write it to a file and use
sha256_file: PATH instead of sha256. To revoke the token, remove the entry
and reload.
`, entry.yaml("  "))
	}
	if *quiet {
		fmt.Fprintln(s.stdout, token)
		fmt.Fprint(s.stderr, next)
		return 0
	}
	fmt.Fprintf(s.stdout, "New admin API token %q (scopes: %s).\n\n"+
		"The token, shown only this once; store it in your secret manager now:\n\n    %s\n\n%s",
		*name, entry.scopes, token, next)
	return 0
}

// tokenEntry is the admin.tokens entry of a new token.
type tokenEntry struct{ name, hash, scopes string }

// yaml returns the entry as a block list item, each line starting with
// indent.
func (e tokenEntry) yaml(indent string) string {
	return fmt.Sprintf("%s- name: %s\n%s  sha256: %s\n%s  scopes: [%s]\n", indent, e.name, indent, e.hash, indent, e.scopes)
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
