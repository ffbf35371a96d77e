package config

import (
	"fmt"
	"strings"
)

// ActionYAML renders action.yml from Inputs and Outputs, so the action's
// contract and the code that reads it cannot drift (a test compares the
// file in the repo with this; `go test ./internal/config -update` rewrites it).
func ActionYAML() string {
	var b strings.Builder
	b.WriteString(`# Generated from internal/config/inputs.go: edit there, then run
#   go test ./internal/config -run TestGenerated -update
name: SQLite Backup over SSH to S3
description: Consistent, verified backups of live SQLite databases (Rails 8 + Kamal) over SSH to S3-compatible storage.
author: sqlite-backup-action
branding:
  icon: database
  color: blue
inputs:
`)
	for _, in := range Inputs() {
		desc := in.Description + envNote(in)
		def := ActionDefault(in)
		if def == "" && in.Default != "" {
			desc += " Default: " + in.Default + "."
		}
		fmt.Fprintf(&b, "  %s:\n    description: %s\n    required: false\n", in.Name, yamlString(desc))
		if def != "" {
			fmt.Fprintf(&b, "    default: %s\n", yamlString(def))
		}
	}
	b.WriteString("outputs:\n")
	for _, out := range ActionOutputs() {
		fmt.Fprintf(&b, "  %s:\n    description: %s\n", out.Name, yamlString(out.Description))
	}
	b.WriteString("runs:\n  using: docker\n  image: Dockerfile\n")
	return b.String()
}

// ActionDefault is the default action.yml declares for an input. The
// runner passes a declared default as INPUT_<NAME> exactly as if the user
// had given it, so an input that an environment variable or the Kamal
// config can fill declares none: the code applies its default after them.
func ActionDefault(in Input) string {
	if len(in.Env) > 0 || KamalFilled(in.Name) {
		return ""
	}
	return in.Default
}

// ActionOutputs are every output the action sets, as action.yml declares them.
func ActionOutputs() []Input {
	return append(Outputs(), RestoreOutputs()...)
}

func envNote(in Input) string {
	if len(in.Env) == 0 {
		return ""
	}
	return " Falls back to env " + strings.Join(in.Env, ", ") + "."
}

// yamlString double-quotes s for YAML.
func yamlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// MarkdownInputs renders the README's inputs and outputs tables.
func MarkdownInputs() string {
	var b strings.Builder
	b.WriteString("| Input | Default | Env fallback | Description |\n|---|---|---|---|\n")
	for _, in := range Inputs() {
		def := in.Default
		if def != "" {
			def = "`" + def + "`"
		}
		env := ""
		if len(in.Env) > 0 {
			env = "`" + strings.Join(in.Env, "`, `") + "`"
		}
		desc := strings.ReplaceAll(in.Description, "|", `\|`)
		if in.Secret {
			desc += " Secret: masked, never printed."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", in.Name, def, env, desc)
	}
	b.WriteString("\n| Output | Description |\n|---|---|\n")
	for _, out := range ActionOutputs() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", out.Name, out.Description)
	}
	return b.String()
}
