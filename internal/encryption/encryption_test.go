package encryption

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

// newKey returns a fresh identity as age-keygen writes it, and its public key.
func newKey(t *testing.T) (identity, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return "# created: 2026-01-01T00:00:00Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n", id.Recipient().String()
}

func TestRoundTripSizes(t *testing.T) {
	id1, pub1 := newKey(t)
	id2, pub2 := newKey(t)
	rs, err := ParseRecipients(pub1 + ",\n  " + pub2 + " " + pub1)
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Strings(); len(got) != 2 || !Equal(got, []string{pub2, pub1}) {
		t.Fatalf("recipients %v, want %s and %s once each", got, pub1, pub2)
	}
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 3*chunkSize + 17} {
		plain := make([]byte, n)
		rand.Read(plain)
		var ct bytes.Buffer
		w, err := rs.Encrypt(&ct)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := int64(ct.Len()), rs.EncryptedSize(int64(n)); got != want {
			t.Errorf("%d bytes: ciphertext is %d bytes, EncryptedSize says %d", n, got, want)
		}
		if !IsEncrypted(ct.Bytes()) {
			t.Errorf("%d bytes: ciphertext does not start with %q", n, Magic)
		}
		for i, idText := range []string{id1, id2} {
			ids, err := ParseIdentities(idText)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ids.Decrypt(bytes.NewReader(ct.Bytes()))
			if err != nil {
				t.Fatalf("identity %d: %v", i+1, err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("identity %d, %d bytes: got %d bytes back, err %v", i+1, n, len(got), err)
			}
		}
	}
}

func TestDecryptFailures(t *testing.T) {
	_, pub := newKey(t)
	other, _ := newKey(t)
	rs, err := ParseRecipients(pub)
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	w, _ := rs.Encrypt(&ct)
	io.WriteString(w, strings.Repeat("secret data ", 20000))
	w.Close()
	ids, err := ParseIdentities(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ids.Decrypt(bytes.NewReader(ct.Bytes())); !errors.Is(err, ErrNoMatch) {
		t.Errorf("wrong identity: got %v, want ErrNoMatch", err)
	}
	if _, err := ids.Decrypt(strings.NewReader("\x28\xb5\x2f\xfd zstd, not age")); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plain object: got %v, want ErrNotEncrypted", err)
	}
	if _, err := ids.Decrypt(strings.NewReader("")); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("empty object: got %v, want ErrNotEncrypted", err)
	}
}

// TestTruncatedFails: a file cut at a chunk boundary decrypts up to the
// cut, then fails: the last chunk is authenticated only at the end.
func TestTruncatedFails(t *testing.T) {
	idText, pub := newKey(t)
	rs, _ := ParseRecipients(pub)
	ids, _ := ParseIdentities(idText)
	var ct bytes.Buffer
	w, _ := rs.Encrypt(&ct)
	w.Write(make([]byte, 3*chunkSize))
	w.Close()
	cut := ct.Bytes()[:ct.Len()-chunkSize-tagSize] // drop the last chunk whole
	r, err := ids.Decrypt(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Error("a file cut at a chunk boundary decrypted without error")
	}
}

func TestParseRejectsWithoutEchoing(t *testing.T) {
	idText, pub := newKey(t)
	secret := strings.TrimSpace(idText[strings.LastIndex(strings.TrimSpace(idText), "\n")+1:])
	cases := []struct {
		name, recipients, identities, want string
	}{
		{name: "private key as recipient", recipients: pub + "\n" + secret, want: "entry 2 is a private key"},
		{name: "garbage recipient", recipients: "ssh-ed25519 AAAAC3Nz", want: "entry 1 is not an age public key"},
		{name: "typo in recipient", recipients: pub[:len(pub)-1] + "q", want: "entry 1: malformed recipient"},
		{name: "no recipient", recipients: "# only a comment\n\n", want: "no age public key"},
		{name: "public key as identity", identities: pub, want: "entry 1 is a public key"},
		{name: "broken identity", identities: secret[:len(secret)-2] + "QQ", want: "entry 1 is a malformed age private key"},
		{name: "not an identity", identities: "-----BEGIN OPENSSH PRIVATE KEY-----", want: "entry 1 is not an age private key"},
		{name: "empty identity", identities: "# created: today\n", want: "no age private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.recipients != "" {
				_, err = ParseRecipients(tc.recipients)
			} else {
				_, err = ParseIdentities(tc.identities)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret[16:]) || strings.Contains(err.Error(), "OPENSSH") {
				t.Errorf("the error repeats key material: %v", err)
			}
		})
	}
}

func TestIdentitiesMatch(t *testing.T) {
	id1, pub1 := newKey(t)
	id2, pub2 := newKey(t)
	_, pub3 := newKey(t)
	ids, err := ParseIdentities(id1 + "\n" + id2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids.Recipients(); len(got) != 2 || got[0] != pub1 || got[1] != pub2 {
		t.Errorf("recipients %v", got)
	}
	if !ids.Matches([]string{pub3, pub2}) || ids.Matches([]string{pub3}) || ids.Matches(nil) {
		t.Error("Matches is wrong")
	}
	// What a replace's safety backup is encrypted to: the identities' own keys.
	rs, err := ids.AsRecipients()
	if err != nil || !Equal(rs.Strings(), []string{pub1, pub2}) {
		t.Errorf("AsRecipients: %v, %v", rs, err)
	}
	if s := fmt.Sprintf("%v %+v %#v", ids, ids, ids); strings.Contains(s, "AGE-SECRET-KEY") {
		t.Errorf("identities print themselves: %s", s)
	}
}

func TestPostQuantum(t *testing.T) {
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	_, classic := newKey(t)
	if _, err := ParseRecipients(pq.Recipient().String() + " " + classic); err == nil {
		t.Error("mixing post-quantum and classic recipients was accepted")
	}
	rs, err := ParseRecipients(pq.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ParseIdentities(pq.String())
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	w, _ := rs.Encrypt(&ct)
	w.Write(make([]byte, chunkSize+5))
	w.Close()
	if got, want := int64(ct.Len()), rs.EncryptedSize(chunkSize+5); got != want {
		t.Errorf("ciphertext %d bytes, EncryptedSize %d", got, want)
	}
	r, err := ids.Decrypt(&ct)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != chunkSize+5 {
		t.Fatalf("got %d bytes, %v", len(b), err)
	}
	if d := Describe([]string{pq.Recipient().String()}); len(d) > 40 {
		t.Errorf("Describe does not shorten a post-quantum key: %d characters", len(d))
	}
}
