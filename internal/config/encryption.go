package config

import (
	"fmt"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
)

// encryptionInputs are the client-side encryption inputs: backup needs
// public keys only; restore and verify need a private key.
func encryptionInputs() []Input {
	read := []string{CommandRestore, CommandVerify}
	return []Input{
		{Name: "encryption_recipients", Commands: []string{CommandBackup},
			Description: "backup: age public keys (age1…, from `age-keygen -y`), comma, space or newline separated. Every object is encrypted on the runner, after compression, " +
				"so that each of them can decrypt it (<name>.sqlite3.zst.age). Public: no secret is needed to back up. Empty: objects are not encrypted."},
		{Name: "encryption_identity", Secret: true, Commands: read,
			Description: "restore, verify: age private key(s) (AGE-SECRET-KEY-1…, as `age-keygen` writes them) that decrypt an encrypted group. " +
				"restore_mode replace also encrypts its safety backup to this identity's public key."},
		{Name: "encryption_identity_path", Commands: read,
			Description: "Path of an age identity file, instead of encryption_identity (CLI use)."},
	}
}

// EncryptionConfig holds the parsed keys.
type EncryptionConfig struct {
	Recipients *encryption.Recipients // backup: nil = objects are not encrypted
	Identities *encryption.Identities // restore, verify: nil = none given
}

// parse reads the keys of the command that uses them: recipients for
// backup, identities for restore and verify. Errors never quote a key.
func (e *EncryptionConfig) parse(vals map[string]string, readFile func(string) ([]byte, error)) []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	switch strings.TrimSpace(vals["command"]) {
	case CommandBackup:
		if s := vals["encryption_recipients"]; strings.TrimSpace(s) != "" {
			r, err := encryption.ParseRecipients(s)
			if err != nil {
				bad("encryption_recipients", "%v", err)
			}
			e.Recipients = r
		}
	case CommandRestore, CommandVerify:
		id, p := vals["encryption_identity"], strings.TrimSpace(vals["encryption_identity_path"])
		input := "encryption_identity"
		if p != "" {
			if strings.TrimSpace(id) != "" {
				bad("encryption_identity_path", "give encryption_identity or encryption_identity_path, not both")
				return errs
			}
			b, err := readFile(p)
			if err != nil {
				bad("encryption_identity_path", "read %s: %v", p, err)
				return errs
			}
			id, input = string(b), "encryption_identity_path"
		}
		if strings.TrimSpace(id) != "" {
			ids, err := encryption.ParseIdentities(id)
			if err != nil {
				bad(input, "%v", err)
			}
			e.Identities = ids
		}
	}
	return errs
}
