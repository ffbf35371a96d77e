// Package catalog knows the layout of backup groups in a store and the
// manifest that marks a group complete. It does no I/O.
//
// Layout: <prefix>/<environment>/<YYYYMMDD-HHMMSS>/<file>, with
// manifest.json written last, and an in-progress marker written first and
// removed after the manifest.
package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// Names of the special objects of a group.
const (
	ManifestName   = "manifest.json"
	InProgressName = "in-progress"
	// IDLayout is the time layout of a group id (always UTC).
	IDLayout = "20060102-150405"
	// ManifestFormat is bumped on incompatible manifest changes.
	ManifestFormat = 1
)

var idPattern = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}$`)

// NewID returns the group id for a backup started at t.
func NewID(t time.Time) string { return t.UTC().Format(IDLayout) }

// ParseID parses a group id; it rejects anything that is not exactly
// YYYYMMDD-HHMMSS naming a real instant.
func ParseID(id string) (time.Time, error) {
	if !idPattern.MatchString(id) {
		return time.Time{}, fmt.Errorf("group id %q is not YYYYMMDD-HHMMSS", id)
	}
	t, err := time.ParseInLocation(IDLayout, id, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("group id %q: %w", id, err)
	}
	return t, nil
}

// Layout builds and parses keys for one prefix and environment.
type Layout struct {
	Prefix      string // e.g. db_backups; may be empty
	Environment string // e.g. production
}

// Root is the key prefix holding every group of the environment, ending in "/".
func (l Layout) Root() string {
	p := strings.Trim(l.Prefix, "/")
	if p == "" {
		return strings.Trim(l.Environment, "/") + "/"
	}
	return p + "/" + strings.Trim(l.Environment, "/") + "/"
}

// GroupPrefix is the key prefix of one group, ending in "/".
func (l Layout) GroupPrefix(id string) string { return l.Root() + id + "/" }

// Key is the key of a file in a group.
func (l Layout) Key(id, name string) string { return l.GroupPrefix(id) + name }

// ManifestKey is the key of a group's manifest.
func (l Layout) ManifestKey(id string) string { return l.Key(id, ManifestName) }

// InProgressKey is the key of a group's in-progress marker.
func (l Layout) InProgressKey(id string) string { return l.Key(id, InProgressName) }

// Split parses a key below Root into group id and file name. ok is false
// for keys outside Root or that do not have the shape <id>/<name>.
func (l Layout) Split(key string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(key, l.Root())
	if !found {
		return "", "", false
	}
	id, name, found = strings.Cut(rest, "/")
	if !found || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	if _, err := ParseID(id); err != nil {
		return "", "", false
	}
	return id, name, true
}

// Manifest describes a complete backup group. It is uploaded last.
type Manifest struct {
	Format      int       `json:"format"`
	Tool        string    `json:"tool"`
	ToolVersion string    `json:"tool_version"`
	GroupID     string    `json:"group_id"`
	CreatedAt   time.Time `json:"created_at"`
	CompletedAt time.Time `json:"completed_at"`
	Host        string    `json:"host"`
	RemotePath  string    `json:"remote_path"`
	Environment string    `json:"environment"`
	// Recipients are the age public keys every encrypted file of the group
	// is encrypted to (never a private key); empty when nothing is.
	Recipients []string `json:"encryption_recipients,omitempty"`
	Files      []File   `json:"files"`
}

// File is one database in a manifest.
type File struct {
	Name           string `json:"name"`            // original database file name
	Size           int64  `json:"size"`            // bytes of the snapshot (uncompressed)
	SHA256         string `json:"sha256"`          // of the snapshot (uncompressed)
	Key            string `json:"key"`             // stored object key
	StoredSize     int64  `json:"stored_size"`     // bytes of the stored object
	StoredSHA256   string `json:"stored_sha256"`   // of the stored object
	Compression    string `json:"compression"`     // zstd, gzip or none
	PageSize       int    `json:"page_size"`       // SQLite page size
	PageCount      int64  `json:"page_count"`      // SQLite page count
	SQLiteVersion  string `json:"sqlite_version"`  // library that took the snapshot
	IntegrityCheck string `json:"integrity_check"` // result of PRAGMA integrity_check ("ok")
	// CopiedFrom names the group whose identical snapshot was copied
	// server-side instead of sent again (the database had not changed).
	CopiedFrom string `json:"copied_from,omitempty"`
	// Encryption is EncryptionAge when the object is the compressed snapshot
	// encrypted to the manifest's Recipients; then StoredSize and
	// StoredSHA256 are of the ciphertext, and these of the compressed bytes.
	Encryption       string `json:"encryption,omitempty"`
	CompressedSize   int64  `json:"compressed_size,omitempty"`
	CompressedSHA256 string `json:"compressed_sha256,omitempty"`
}

// EncryptionAge is File.Encryption for an object encrypted with age.
const EncryptionAge = "age"

// Encrypted reports whether any file of the group is encrypted.
func (m *Manifest) Encrypted() bool {
	for _, f := range m.Files {
		if f.Encryption != "" {
			return true
		}
	}
	return false
}

// Encode renders the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates a manifest. Names and keys come from
// the bucket, which is untrusted: a file name must be a plain base name.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("parse manifest: unsupported format %d (this tool reads %d)", m.Format, ManifestFormat)
	}
	if _, err := ParseID(m.GroupID); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for i, f := range m.Files {
		if err := ValidateName(f.Name); err != nil {
			errs = append(errs, fmt.Errorf("file %d: %w", i, err))
		}
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("file %d: duplicate name %q", i, f.Name))
		}
		seen[f.Name] = true
		if f.Key == "" || strings.Contains(f.Key, "..") || strings.HasPrefix(f.Key, "/") {
			errs = append(errs, fmt.Errorf("file %d: bad key %q", i, f.Key))
		}
		if f.Encryption != "" && f.Encryption != EncryptionAge {
			errs = append(errs, fmt.Errorf("file %d: unsupported encryption %q (this tool reads %s)", i, f.Encryption, EncryptionAge))
		}
	}
	if m.Encrypted() && len(m.Recipients) == 0 {
		errs = append(errs, errors.New("encrypted files, but no encryption_recipients"))
	}
	for i, r := range m.Recipients {
		// Only public keys belong here; never echo anything else.
		if !strings.HasPrefix(strings.ToLower(r), "age1") || strings.ContainsAny(r, " \n,") {
			errs = append(errs, fmt.Errorf("encryption_recipients %d is not an age public key (age1…)", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	return &m, nil
}

// ValidateName accepts a plain file name: not empty, no slash or
// backslash, no NUL, not "." or "..", not starting with "..".
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("file name %q contains a path separator or NUL", name)
	case name == "." || name == ".." || strings.HasPrefix(name, ".."):
		return fmt.Errorf("file name %q is not a plain name", name)
	case path.Base(name) != name:
		return fmt.Errorf("file name %q is not a plain name", name)
	}
	return nil
}
