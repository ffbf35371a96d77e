package catalog

import (
	"strings"
	"testing"
)

func TestParseManifestEncryption(t *testing.T) {
	const pub = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	file := func(enc string) string {
		return `{"name":"production.sqlite3","key":"db_backups/production/20261125-020000/production.sqlite3.zst.age","encryption":"` + enc + `"}`
	}
	manifest := func(recipients, f string) []byte {
		return []byte(`{"format":1,"group_id":"20261125-020000",` + recipients + `"files":[` + f + `]}`)
	}
	cases := []struct {
		name, recipients, file, want string
	}{
		{name: "encrypted", recipients: `"encryption_recipients":["` + pub + `"],`, file: file("age")},
		{name: "plain", file: file("")},
		{name: "no recipients", file: file("age"), want: "encrypted files, but no encryption_recipients"},
		{name: "unknown scheme", recipients: `"encryption_recipients":["` + pub + `"],`, file: file("rot13"), want: `unsupported encryption "rot13"`},
		{name: "private key recorded", recipients: `"encryption_recipients":["AGE-SECRET-KEY-1QQQQ"],`, file: file("age"),
			want: "encryption_recipients 0 is not an age public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(manifest(tc.recipients, tc.file))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Encrypted() != (m.Files[0].Encryption != "") {
					t.Errorf("Encrypted() = %v", m.Encrypted())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "QQQQ") {
				t.Fatalf("got %v, want %q (and no key material)", err, tc.want)
			}
		})
	}
}
