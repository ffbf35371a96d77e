package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite action.yml and the README tables")

const (
	readmeBegin = "<!-- inputs:begin (generated: go test ./internal/config -update) -->\n"
	readmeEnd   = "<!-- inputs:end -->"
)

// TestGenerated checks that action.yml and the README's input table say
// exactly what inputs.go declares.
func TestGenerated(t *testing.T) {
	root := filepath.Join("..", "..")
	yml := filepath.Join(root, "action.yml")
	want := ActionYAML()
	if *update {
		if err := os.WriteFile(yml, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(yml)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("action.yml is out of date with internal/config/inputs.go: run go test ./internal/config -update")
	}

	readme := filepath.Join(root, "README.md")
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", readmeBegin, readmeEnd)
	}
	table := MarkdownInputs()
	if *update {
		s = s[:i+len(readmeBegin)] + table + s[j:]
		if err := os.WriteFile(readme, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s[i+len(readmeBegin):j] != table {
		t.Errorf("README.md inputs table is out of date: run go test ./internal/config -update")
	}
}

// actionMetadata is the part of action.yml the runner reads.
type actionMetadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Branding    struct {
		Icon  string `yaml:"icon"`
		Color string `yaml:"color"`
	} `yaml:"branding"`
	Inputs map[string]struct {
		Description string  `yaml:"description"`
		Required    bool    `yaml:"required"`
		Default     *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
	} `yaml:"outputs"`
	Runs struct {
		Using      string   `yaml:"using"`
		Image      string   `yaml:"image"`
		Entrypoint string   `yaml:"entrypoint"`
		Args       []string `yaml:"args"`
	} `yaml:"runs"`
}

// TestActionYAMLMatchesInputs parses action.yml as the runner does and
// checks it declares exactly the inputs the config code reads, with the
// defaults the runner may pass, and exactly the outputs.
func TestActionYAMLMatchesInputs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m actionMetadata
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	declared := map[string]bool{}
	for _, in := range Inputs() {
		declared[in.Name] = true
		got, ok := m.Inputs[in.Name]
		if !ok {
			t.Errorf("input %s is read by the config code but action.yml does not declare it", in.Name)
			continue
		}
		if got.Required {
			t.Errorf("input %s: required: true (the config code reports missing inputs itself, all at once)", in.Name)
		}
		def := ""
		if got.Default != nil {
			def = *got.Default
		}
		if want := ActionDefault(in); def != want {
			t.Errorf("input %s: action.yml default %q, want %q", in.Name, def, want)
		}
		if strings.TrimSpace(got.Description) == "" {
			t.Errorf("input %s has no description", in.Name)
		}
	}
	for name := range m.Inputs {
		if !declared[name] {
			t.Errorf("action.yml declares input %s, which the config code does not read", name)
		}
	}
	outs := map[string]bool{}
	for _, o := range ActionOutputs() {
		outs[o.Name] = true
		if _, ok := m.Outputs[o.Name]; !ok {
			t.Errorf("output %s is not declared in action.yml", o.Name)
		}
	}
	for name := range m.Outputs {
		if !outs[name] {
			t.Errorf("action.yml declares output %s, which nothing sets", name)
		}
	}
	if m.Runs.Using != "docker" || m.Runs.Image != "Dockerfile" || m.Runs.Entrypoint != "" || len(m.Runs.Args) != 0 {
		t.Errorf("runs = %+v, want using: docker, image: Dockerfile, the image's own ENTRYPOINT and no args", m.Runs)
	}
	if m.Name == "" || m.Description == "" || len(m.Description) > 125 {
		t.Errorf("name %q / description (%d chars): the Marketplace wants both, the description under 125 characters", m.Name, len(m.Description))
	}
	if m.Branding.Icon == "" || m.Branding.Color == "" {
		t.Errorf("branding = %+v: want an icon and a color (actionlint checks they are ones GitHub accepts)", m.Branding)
	}
}

// TestEveryInputIsRead changes one input at a time from a valid set of
// values and checks that the Config (or the error) changes: an input that
// is declared but never read by FromValues fails here. Inputs read only
// with another one (the jump host's keys) have it in the valid set.
func TestEveryInputIsRead(t *testing.T) {
	readFile := func(p string) ([]byte, error) { return []byte("contents of " + p), nil }
	valid := func(command string) map[string]string {
		given := map[string]string{"command": command, "bucket": "b", "ssh_host": "h", "ssh_private_key": "k",
			"ssh_known_hosts": "h ssh-ed25519 AAAA", "confirm": ConfirmWord,
			"ssh_jump_host": "j@jump:2222", "ssh_jump_known_hosts": "[jump]:2222 ssh-ed25519 AAAA"}
		return Resolve(func(n string) (string, bool) { v, ok := given[n]; return v, ok }, func(string) string { return "" }, nil)
	}
	for _, in := range Inputs() {
		command := CommandBackup
		if len(in.Commands) > 0 {
			command = in.Commands[0]
		}
		base, err := FromValues(valid(command), readFile)
		if err != nil {
			t.Fatalf("%s: the valid values fail: %v", command, err)
		}
		vals := valid(command)
		if in.Bool {
			vals[in.Name] = strconv.FormatBool(!parseTrue(vals[in.Name]))
		} else {
			vals[in.Name] = "\x01probe"
		}
		got, err := FromValues(vals, readFile)
		if err == nil && reflect.DeepEqual(got, base) {
			t.Errorf("input %s (command %s): changing it changes nothing: the config code does not read it", in.Name, command)
		}
	}
}

func parseTrue(s string) bool { b, _ := strconv.ParseBool(s); return b }

// TestConfigReadsOnlyDeclaredInputs: every vals["name"] in the config code
// names a declared input.
func TestConfigReadsOnlyDeclaredInputs(t *testing.T) {
	declared := map[string]bool{}
	for _, in := range Inputs() {
		declared[in.Name] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`vals\["([a-z0-9_]+)"\]`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range read.FindAllStringSubmatch(string(b), -1) {
			n++
			if !declared[m[1]] {
				t.Errorf("%s reads vals[%q], which no input declares", f, m[1])
			}
		}
	}
	if n < len(declared)/2 {
		t.Errorf("found only %d vals[...] reads: the pattern no longer matches the config code", n)
	}
}
