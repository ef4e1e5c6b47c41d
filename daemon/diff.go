package daemon

import (
	"reflect"
	"slices"
	"strings"
)

// reloadable are the config keys (and the keys under them) that Reload can
// apply to a running daemon; every other key that differs is refused by
// name, so that a new setting is refused until someone makes it reloadable
// (as nats-server's reload refuses options it does not know). admin.*
// keys are further checked by the admin server, which refuses the few it
// cannot change while serving.
var reloadable = []string{"allow_inline_secrets", "detect", "receivers", "routes", "notify", "admin", "privacy"}

// notReloadable returns the keys that differ between old and cur and that
// Reload cannot apply, in the order of the config.
func notReloadable(old, cur any) []string {
	var fixed []string
	for _, key := range changedKeys(old, cur) {
		if !slices.ContainsFunc(reloadable, func(r string) bool { return key == r || strings.HasPrefix(key, r+".") }) {
			fixed = append(fixed, key)
		}
	}
	return fixed
}

// changedKeys returns the dotted YAML keys of the values that differ
// between a and b, two values of one struct type: a nested section is
// compared key by key, any other value (a list, a map, a duration, a
// secret) as a whole. Fields without a YAML name are compared under their
// Go name.
func changedKeys(a, b any) []string {
	var out []string
	diffValue(reflect.ValueOf(a), reflect.ValueOf(b), "", &out)
	return out
}

func diffValue(a, b reflect.Value, key string, out *[]string) {
	if a.Kind() == reflect.Struct && hasKeys(a.Type()) {
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue // not configuration: e.g. what a parser noted
			}
			name, inline := yamlName(f)
			if name == "-" {
				continue
			}
			sub := key
			if !inline {
				sub = join(key, name)
			}
			diffValue(a.Field(i), b.Field(i), sub, out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, key)
	}
}

// hasKeys reports whether t is a config section: a struct with exported
// fields, rather than a value such as a secret or a time.
func hasKeys(t reflect.Type) bool {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			if _, ok := f.Tag.Lookup("yaml"); ok {
				return true
			}
		}
	}
	return false
}

// yamlName returns a field's YAML key and whether it is inlined.
func yamlName(f reflect.StructField) (string, bool) {
	tag, ok := f.Tag.Lookup("yaml")
	if !ok {
		return f.Name, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	inline := slices.Contains(strings.Split(opts, ","), "inline")
	if name == "" {
		name = f.Name
	}
	return name, inline
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
