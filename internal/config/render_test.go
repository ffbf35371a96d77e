package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
