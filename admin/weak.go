package admin

import (
	"fmt"
	"strings"
)

// wellKnown are strings people type when a token is wanted and they have
// none yet, or copy from an example. A token whose SHA-256 is the hash of
// one of them (with or without the newline `echo` adds) is no secret at all.
var wellKnown = []string{
	"", "test", "testing", "password", "passw0rd", "changeme", "change-me", "admin", "secret",
	"token", "vigil", "example", "default", "letmein", "qwerty", "123456", "12345678",
	"foo", "bar", "hello", "root", "guest",
}

// weakHashes maps the hash of each well-known string to that string.
var weakHashes = func() map[string]string {
	m := make(map[string]string, 2*len(wellKnown))
	for _, w := range wellKnown {
		m[HashToken(w)] = w
		m[HashToken(w+"\n")] = w + "\n"
	}
	return m
}()

// weakHashError returns an error when hash is the SHA-256 of a well-known
// string, naming the string and how to make a real token named name.
func weakHashError(name, hash string) error {
	w, ok := weakHashes[strings.ToLower(hash)]
	if !ok {
		return nil
	}
	what := fmt.Sprintf("%q", w)
	switch {
	case w == "":
		what = "the empty string"
	case strings.HasSuffix(w, "\n"):
		what = fmt.Sprintf("%q followed by a newline (as `echo %s | sha256sum` makes it)", strings.TrimSuffix(w, "\n"), strings.TrimSuffix(w, "\n"))
	}
	return fmt.Errorf("the sha256 is the hash of %s, a well-known string, so anyone could use this token; "+
		"make a real one with 'vigil token new --name %s --scopes read' and put the sha256 it prints here", what, name)
}
