package deploy

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// No Docker engine runs where these tests run, so the image itself is not
// built; these tests check what can be checked without one.

// dockerfile returns the instructions of the Dockerfile, continuation lines
// joined, comments dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("container/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		cur += l
		if strings.HasSuffix(cur, "\\") {
			cur = strings.TrimSuffix(cur, "\\") + " "
			continue
		}
		out = append(out, cur)
		cur = ""
	}
	return out
}

// TestDockerfile checks the image's shape: a build stage and a minimal
// non-root runtime stage, a static build, a healthcheck on /healthz, and
// build paths that exist in the repository.
func TestDockerfile(t *testing.T) {
	var froms, users, healthchecks, builds []string
	for _, ins := range dockerfile(t) {
		word, rest, _ := strings.Cut(ins, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			froms = append(froms, rest)
		case "USER":
			users = append(users, rest)
		case "HEALTHCHECK":
			healthchecks = append(healthchecks, rest)
		case "RUN":
			if strings.Contains(rest, "go build") {
				builds = append(builds, rest)
			}
		case "ENV":
			if !strings.Contains(rest, "CGO_ENABLED=0") {
				t.Errorf("ENV %s: the build must set CGO_ENABLED=0 for a static binary", rest)
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a build stage and a runtime stage", froms)
	}
	if final := froms[len(froms)-1]; !strings.Contains(final, "distroless/static") || !strings.HasSuffix(final, ":nonroot") {
		t.Errorf("runtime stage FROM %s: want distroless/static with the nonroot tag", final)
	}
	if len(users) != 1 || strings.HasPrefix(users[0], "0") || strings.HasPrefix(users[0], "root") {
		t.Errorf("USER %v: want exactly one, not root", users)
	}
	if len(healthchecks) != 1 || !strings.Contains(healthchecks[0], "/healthz") {
		t.Errorf("HEALTHCHECK %v: want one on /healthz", healthchecks)
	}
	for _, pkg := range []string{"./cmd/vigil", "./deploy/container/healthcheck"} {
		if !slices.ContainsFunc(builds, func(b string) bool { return strings.Contains(b, pkg) }) {
			t.Errorf("no go build of %s in %v", pkg, builds)
		}
		if st, err := os.Stat(filepath.Join(repoRoot(t), pkg)); err != nil || !st.IsDir() {
			t.Errorf("the Dockerfile builds %s, which is not a directory: %v", pkg, err)
		}
	}
}

// TestHealthcheckIsStatic builds the healthcheck as the Dockerfile does and
// checks that the ELF file has no interpreter and no shared libraries, so it
// runs on distroless/static.
func TestHealthcheckIsStatic(t *testing.T) {
	t.Parallel()
	goTool := needTool(t, "go")
	bin := filepath.Join(t.TempDir(), "healthcheck")
	out, err := run(t, 5*time.Minute, repoRoot(t), []string{"CGO_ENABLED=0"}, goTool,
		"build", "-ldflags", "-s -w", "-o", bin, "./deploy/container/healthcheck")
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
}

// TestVigilNeedsNoCgo checks that every package of ./cmd/vigil builds with
// CGO_ENABLED=0, as the Dockerfile's static build requires, without paying
// for a second full build of the daemon.
func TestVigilNeedsNoCgo(t *testing.T) {
	t.Parallel()
	goTool := needTool(t, "go")
	out, err := run(t, 2*time.Minute, repoRoot(t), []string{"CGO_ENABLED=0"}, goTool,
		"list", "-deps", "-e", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", "./cmd/vigil")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("CGO_ENABLED=0 go list -deps ./cmd/vigil: %v\n%s", err, out)
	}
}
