package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s fit for one line of a terminal: every character that
// is not printable (control characters such as ESC, which could rewrite the
// terminal, newlines and tabs) and every byte that is not UTF-8 is written
// as an escape (\x1b, \n, \u2028).
func printable(s string) string { return escape(s, false) }

// printableText is printable for several lines: newlines and tabs stay.
func printableText(s string) string { return escape(s, true) }

func escape(s string, text bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case text && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}
