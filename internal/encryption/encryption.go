// Package encryption seals backup objects with age (filippo.io/age) on the
// runner. A backup encrypts to public keys (recipients, age1…), so it never
// needs a private key; restore and verify decrypt with identities
// (AGE-SECRET-KEY-1…). Nothing here ever puts key material in an error.
package encryption

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"filippo.io/age"
)

const (
	// Ext ends the key of an encrypted object: <name>.sqlite3.zst.age.
	Ext = ".age"
	// Magic is the first line of every age file.
	Magic = "age-encryption.org/v1\n"

	chunkSize = 64 << 10 // age's STREAM chunk of plaintext
	tagSize   = 16       // ChaCha20-Poly1305 tag per chunk
	nonceSize = 16       // after the header
)

var (
	// ErrNotEncrypted is wrapped when an object said to be encrypted is not
	// an age file.
	ErrNotEncrypted = errors.New("not an age-encrypted object")
	// ErrNoMatch is wrapped when none of the identities decrypts an object.
	ErrNoMatch = errors.New("none of the identities decrypts it")
)

// Recipients are the public keys objects are encrypted to: every one of
// them can decrypt every object.
type Recipients struct {
	keys       []string // canonical encodings, sorted, unique
	rs         []age.Recipient
	headerSize int64 // bytes of the age header for these recipients
}

// ParseRecipients reads age public keys (age1… or age1pq1…) separated by
// commas, spaces or newlines; lines starting with # are comments. The
// error never repeats an entry that is not a public key: it may be a
// private key pasted into the wrong place.
func ParseRecipients(s string) (*Recipients, error) {
	r := &Recipients{}
	seen := map[string]bool{}
	n := 0
	for _, field := range fields(s) {
		n++
		lower := strings.ToLower(field)
		switch {
		case strings.HasPrefix(lower, "age-secret-key-"):
			return nil, fmt.Errorf("entry %d is a private key (AGE-SECRET-KEY-…): give its public key instead (age-keygen -y), and rotate that key: it was not meant to be in a workflow", n)
		case !strings.HasPrefix(lower, "age1"):
			return nil, fmt.Errorf("entry %d is not an age public key (age1…)", n)
		}
		rec, err := parseRecipient(lower)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", n, err)
		}
		key := rec.(fmt.Stringer).String()
		if !seen[key] {
			seen[key] = true
			r.keys = append(r.keys, key)
			r.rs = append(r.rs, rec)
		}
	}
	if len(r.keys) == 0 {
		return nil, errors.New("no age public key (age1…) given")
	}
	slices.Sort(r.keys)
	// A trial run proves the recipients can be used together (age refuses
	// to mix post-quantum and classic keys) and measures the header.
	var c countWriter
	w, err := age.Encrypt(&c, r.rs...)
	if err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	r.headerSize = c.n - nonceSize - tagSize // an empty file is one empty chunk
	return r, nil
}

func parseRecipient(s string) (age.Recipient, error) {
	if strings.HasPrefix(s, "age1pq1") {
		return age.ParseHybridRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}

// Strings returns the canonical public keys, sorted.
func (r *Recipients) Strings() []string { return slices.Clone(r.keys) }

// Encrypt returns a writer that encrypts to dst; Close writes the last
// chunk (and does not close dst).
func (r *Recipients) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	w, err := age.Encrypt(dst, r.rs...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return w, nil
}

// EncryptedSize is the exact size of n bytes encrypted by Encrypt.
func (r *Recipients) EncryptedSize(n int64) int64 {
	chunks := max((n+chunkSize-1)/chunkSize, 1)
	return r.headerSize + nonceSize + n + chunks*tagSize
}

// Equal reports whether two sets of public keys are the same set (each
// canonical, as Strings and manifests give them).
func Equal(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// Describe shortens a list of public keys for one error line.
func Describe(keys []string) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if len(k) > 64 { // post-quantum keys are ~2000 characters
			k = k[:24] + "…" + k[len(k)-8:]
		}
		out[i] = k
	}
	if len(out) == 0 {
		return "none recorded"
	}
	return strings.Join(out, ", ")
}

// Identities are the private keys restore and verify decrypt with.
type Identities struct {
	ids        []age.Identity
	recipients []string // their public keys, canonical
}

// ParseIdentities reads age private keys (AGE-SECRET-KEY-1… or
// AGE-SECRET-KEY-PQ-1…), as age-keygen writes them: one or more, separated
// by newlines (or commas, spaces), with # comment lines. The error names
// the entry by number, never by its content.
func ParseIdentities(s string) (*Identities, error) {
	in := &Identities{}
	n := 0
	for _, field := range fields(s) {
		n++
		var id age.Identity
		var pub fmt.Stringer
		var err error
		switch upper := strings.ToUpper(field); {
		case strings.HasPrefix(upper, "AGE-SECRET-KEY-PQ-1"):
			var h *age.HybridIdentity
			if h, err = age.ParseHybridIdentity(upper); err == nil {
				id, pub = h, h.Recipient()
			}
		case strings.HasPrefix(upper, "AGE-SECRET-KEY-1"):
			var x *age.X25519Identity
			if x, err = age.ParseX25519Identity(upper); err == nil {
				id, pub = x, x.Recipient()
			}
		case strings.HasPrefix(upper, "AGE1"):
			return nil, fmt.Errorf("entry %d is a public key (age1…): decrypting needs the private key (AGE-SECRET-KEY-1…)", n)
		default:
			return nil, fmt.Errorf("entry %d is not an age private key (AGE-SECRET-KEY-1…)", n)
		}
		if err != nil {
			// age's message may quote the key: say only what it is.
			return nil, fmt.Errorf("entry %d is a malformed age private key (AGE-SECRET-KEY-1…)", n)
		}
		in.ids = append(in.ids, id)
		in.recipients = append(in.recipients, pub.String())
	}
	if len(in.ids) == 0 {
		return nil, errors.New("no age private key (AGE-SECRET-KEY-1…) given")
	}
	return in, nil
}

// String and GoString never print a key: an Identities that reaches a
// log line or an error by accident stays hidden.
func (in *Identities) String() string {
	return fmt.Sprintf("%d age identities (redacted)", len(in.ids))
}

// GoString is String.
func (in *Identities) GoString() string { return in.String() }

// AsRecipients returns the public keys of the identities, to encrypt to.
func (in *Identities) AsRecipients() (*Recipients, error) {
	return ParseRecipients(strings.Join(in.recipients, "\n"))
}

// Recipients returns the public keys of the identities, in input order.
func (in *Identities) Recipients() []string { return slices.Clone(in.recipients) }

// Matches reports whether one of the identities is for one of keys.
func (in *Identities) Matches(keys []string) bool {
	for _, k := range keys {
		if slices.Contains(in.recipients, strings.ToLower(k)) {
			return true
		}
	}
	return false
}

// Decrypt returns the plaintext of the age file read from src. Read it to
// io.EOF: only then is the last chunk authenticated (a truncated file
// fails there). Errors wrap ErrNotEncrypted or ErrNoMatch.
func (in *Identities) Decrypt(src io.Reader) (io.Reader, error) {
	br := bufio.NewReader(src)
	head, err := br.Peek(len(Magic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if !bytes.Equal(head, []byte(Magic)) {
		return nil, ErrNotEncrypted
	}
	r, err := age.Decrypt(br, in.ids...)
	var nm *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nm):
		return nil, ErrNoMatch
	case err != nil:
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return r, nil
}

// IsEncrypted reports whether b (the start of an object) is an age file.
func IsEncrypted(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// fields splits on commas and whitespace, dropping # comment lines.
func fields(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
		})...)
	}
	return out
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
