package validate

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// No Docker daemon is needed: the test reads deploy/Dockerfile, checks
// its two stages, and runs the build stage's own go build command on the
// files the build stage copies from the build context (the repository
// filtered by deploy/Dockerfile.dockerignore), then checks the binary it
// makes.
const (
	dockerfile   = "../Dockerfile"
	dockerignore = "../Dockerfile.dockerignore"
	repoRoot     = "../.."
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY...
	args string
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile splits a Dockerfile into stages: comments and blank
// lines dropped, lines ending in a backslash joined to the next. The
// ARGs before the first FROM are returned apart.
func parseDockerfile(t *testing.T, data []byte) (global []instruction, stages []stage) {
	t.Helper()
	var (
		cur  strings.Builder
		list []instruction
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continued instruction
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		list = append(list, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil || cur.Len() != 0 {
		t.Fatalf("%s: %v, unfinished %q", dockerfile, err, cur.String())
	}
	for _, in := range list {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("%s: FROM %s", dockerfile, in.args)
			}
			stages = append(stages, st)
		case len(stages) == 0:
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", dockerfile, in.cmd)
			}
			global = append(global, in)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return global, stages
}

// args returns the stage's ARG names and defaults.
func (s stage) args() map[string]string {
	a := map[string]string{}
	for _, in := range s.ins {
		if in.cmd == "ARG" {
			name, def, _ := strings.Cut(in.args, "=")
			a[name] = def
		}
	}
	return a
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// shellWords splits a shell command line into words: double and single
// quotes group, nothing else is interpreted (the build command uses no
// more than that).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// buildCommand is the go build of the build stage: its environment
// assignments, its arguments after "go", and the binary it writes.
type buildCommand struct {
	env  []string
	args []string
	out  string
	then [][]string // the commands after it (&&), each split in words
}

func findBuild(t *testing.T, build stage) buildCommand {
	t.Helper()
	var found []buildCommand
	for _, in := range build.all("RUN") {
		parts := strings.Split(in.args, "&&")
		for i, part := range parts {
			w := shellWords(t, part)
			j := 0
			for j < len(w) && regexp.MustCompile(`^[A-Z_]+=`).MatchString(w[j]) {
				j++
			}
			if len(w) < j+2 || w[j] != "go" || w[j+1] != "build" {
				continue
			}
			bc := buildCommand{env: w[:j], args: w[j+1:]}
			for k, a := range bc.args {
				if a == "-o" && k+1 < len(bc.args) {
					bc.out = bc.args[k+1]
				}
			}
			for _, p := range parts[i+1:] {
				bc.then = append(bc.then, shellWords(t, p))
			}
			found = append(found, bc)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d go build commands in the build stage, want 1", dockerfile, len(found))
	}
	return found[0]
}

// The values the test builds with, in place of the build args.
const (
	testVersion = "9.8.7-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// expand replaces ${NAME} and $NAME of the build args.
func expand(s string, vars map[string]string) string {
	return os.Expand(s, func(k string) string { return vars[k] })
}

// TestDockerfile checks the recipe: a build stage making a static,
// -trimpath binary with the version and commit stamped in from the build
// args, and a runtime stage that runs it as a non-root user, labelled
// with the same build args, holding nothing of the build but the binary.
// It then runs that go build on the build context and checks the binary.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	global, stages := parseDockerfile(t, data)
	if len(stages) != 2 {
		t.Fatalf("%s: %d stages, want 2 (build, runtime)", dockerfile, len(stages))
	}
	build, run := stages[0], stages[1]
	if build.name == "" || !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s AS %q: want a named golang image", build.from, build.name)
	}
	// The Go of the build image is the Go of go.mod.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(gomod)
	wantArg := "GO_VERSION=" + string(goVersion[1])
	if len(global) != 1 || global[0].args != wantArg || !strings.HasPrefix(build.from, "golang:${GO_VERSION}") {
		t.Errorf("%s: the build image's Go: ARG %v, FROM %s; want ARG %s (go.mod) in FROM golang:${GO_VERSION}", dockerfile, global, build.from, wantArg)
	}

	bc := findBuild(t, build)
	for _, e := range []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"} {
		if !slices.Contains(bc.env, e) {
			t.Errorf("go build runs with %v: want %s", bc.env, e)
		}
	}
	ldflags := ""
	for k, a := range bc.args {
		if a == "-ldflags" && k+1 < len(bc.args) {
			ldflags = bc.args[k+1]
		}
	}
	if !slices.Contains(bc.args, "-trimpath") || bc.out == "" || bc.args[len(bc.args)-1] != "./cmd/ebsimager" {
		t.Errorf("go %s: want -trimpath, -o and ./cmd/ebsimager last", strings.Join(bc.args, " "))
	}
	for _, f := range []string{"-s", "-w", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}"} {
		if !strings.Contains(" "+ldflags+" ", " "+f+" ") {
			t.Errorf("-ldflags %q: want %s", ldflags, f)
		}
	}
	if len(bc.then) != 1 || !slices.Equal(bc.then[0], []string{bc.out, "--version"}) {
		t.Errorf("the build stage should run the binary it made (%s --version) after go build: %q", bc.out, bc.then)
	}
	for _, a := range []string{"VERSION", "COMMIT"} {
		if _, ok := build.args()[a]; !ok {
			t.Errorf("build stage: no ARG %s", a)
		}
		if _, ok := run.args()[a]; !ok {
			t.Errorf("runtime stage: no ARG %s (an ARG of another stage is not in scope)", a)
		}
	}

	checkRuntime(t, run, build.name, bc.out)
	bin, src := buildFromContext(t, build, bc)
	checkBinary(t, bin, src)
}

// checkRuntime checks the runtime stage: a static base, labels from the
// build args, only the binary copied, a numeric non-root user.
func checkRuntime(t *testing.T, run stage, buildName, binary string) {
	t.Helper()
	if !strings.HasPrefix(run.from, "gcr.io/distroless/static") {
		t.Errorf("runtime FROM %s: want a distroless static image (CA certificates, no shell)", run.from)
	}
	labels := map[string]string{}
	for _, in := range run.all("LABEL") {
		for _, w := range shellWords(t, in.args) {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				t.Errorf("LABEL %s: not key=value", w)
			}
			labels[k] = v
		}
	}
	for k, want := range map[string]string{"org.opencontainers.image.version": "${VERSION}", "org.opencontainers.image.revision": "${COMMIT}"} {
		if labels[k] != want {
			t.Errorf("LABEL %s=%q, want %q", k, labels[k], want)
		}
	}
	copies := run.all("COPY")
	if len(copies) != 1 {
		t.Fatalf("runtime stage: %d COPY, want 1 (the binary)", len(copies))
	}
	w := strings.Fields(copies[0].args)
	if len(w) != 3 || w[0] != "--from="+buildName || w[1] != binary {
		t.Errorf("runtime COPY %s: want --from=%s %s DEST", copies[0].args, buildName, binary)
	}
	dest := w[len(w)-1]
	if len(run.all("ADD")) != 0 || len(run.all("RUN")) != 0 {
		t.Errorf("runtime stage: ADD or RUN (a static base has no shell; copy the binary only)")
	}
	users := run.all("USER")
	if len(users) != 1 {
		t.Fatalf("runtime stage: %d USER, want 1", len(users))
	}
	uid, gid, _ := strings.Cut(users[0].args, ":")
	for _, id := range []string{uid, gid} {
		n, err := strconv.Atoi(id)
		if err != nil || n <= 0 {
			t.Errorf("USER %s: want numeric ids, not 0 (Kubernetes' runAsNonRoot checks a numeric uid)", users[0].args)
		}
	}
	if e := run.all("ENTRYPOINT"); len(e) != 1 || e[0].args != `["`+dest+`"]` {
		t.Errorf("ENTRYPOINT %v: want [\"%s\"] (exec form)", e, dest)
	}
}

// ignoreRule is one line of a .dockerignore.
type ignoreRule struct {
	re      *regexp.Regexp
	include bool
}

// readIgnore reads a .dockerignore: a path is in the build context
// unless the last rule matching it, or one of its parent directories,
// excludes it ("!" re-includes); * and ? stay within a path element, **
// spans any number of them.
func readIgnore(t *testing.T) []ignoreRule {
	t.Helper()
	data, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if s, ok := strings.CutPrefix(line, "!"); ok {
			line, r.include = s, true
		}
		line = path.Clean(strings.TrimPrefix(line, "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		r.re = regexp.MustCompile(re.String())
		rules = append(rules, r)
	}
	return rules
}

func inContext(rules []ignoreRule, rel string) bool {
	in := true
	for _, r := range rules {
		for p := rel; p != "."; p = path.Dir(p) {
			if r.re.MatchString(p) {
				in = r.include
				break
			}
		}
	}
	return in
}

// buildFromContext copies what the build stage copies from the build
// context into a temporary directory and runs the stage's go build
// there, with the test's version and commit as the build args.
func buildFromContext(t *testing.T, build stage, bc buildCommand) (bin, src string) {
	t.Helper()
	rules := readIgnore(t)
	src = t.TempDir()
	copied := 0
	for _, in := range build.all("COPY") {
		w := strings.Fields(in.args)
		if len(w) < 2 || strings.HasPrefix(w[0], "--") {
			t.Fatalf("build stage COPY %s: want sources from the context", in.args)
		}
		for _, from := range w[:len(w)-1] {
			root := filepath.Join(repoRoot, from)
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, err := filepath.Rel(repoRoot, p)
				if err != nil {
					return err
				}
				if !inContext(rules, filepath.ToSlash(rel)) {
					return nil
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				dst := filepath.Join(src, rel)
				if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
					return err
				}
				copied++
				return os.WriteFile(dst, data, 0o600)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "cmd/ebsimager/main.go"} {
		if _, err := os.Stat(filepath.Join(src, f)); err != nil {
			t.Fatalf("the build stage does not get %s from the build context: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "cmd/ebsimager/cli_test.go")); err == nil {
		t.Error("the build context holds the tests: the .dockerignore should leave *_test.go out")
	}
	t.Logf("%d files in the build stage", copied)

	out := filepath.Join(t.TempDir(), "ebsimager")
	vars := map[string]string{"VERSION": testVersion, "COMMIT": testCommit}
	args := make([]string, len(bc.args))
	for i, a := range bc.args {
		if a == bc.out {
			a = out
		}
		args[i] = expand(a, vars)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), bc.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out, src
}

// checkBinary checks that the binary is static, built as the recipe
// says (built in src), and reports the version and commit the build
// args gave.
func checkBinary(t *testing.T, bin, src string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: not static", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("the binary needs %v (%v): not static", libs, err)
	}
	if f.Section(".dynamic") != nil {
		t.Error("the binary has a .dynamic section: not static")
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not strip it")
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings %v: want CGO_ENABLED=0 and -trimpath=true", settings)
	}
	if _, ok := settings["vcs.revision"]; ok {
		t.Errorf("build settings %v: VCS stamping, where the image has no .git", settings)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(src)) {
		t.Error("the binary holds a path of the build machine: -trimpath did not apply")
	}
	got, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, got)
	}
	if want := "ebsimager version " + testVersion + "+" + testCommit[:12] + "\n"; string(got) != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}
