package s3store

import (
	"path"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestObjectLockOptions(t *testing.T) {
	cases := []struct {
		name    string
		days    int
		mode    string
		want    types.ObjectLockMode
		wantErr string
	}{
		{"off", 0, "", "", ""},
		{"off ignores the mode", 0, "bogus", "", ""},
		{"governance by default", 7, "", types.ObjectLockModeGovernance, ""},
		{"compliance, any case", 7, " compliance ", types.ObjectLockModeCompliance, ""},
		{"unknown mode", 7, "LEGAL", "", `object lock mode "LEGAL"`},
		{"negative days", -1, "", "", "object lock days -1"},
		{"too many days", 36501, "", "", "object lock days 36501"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newObjectLock(Options{ObjectLockDays: tc.days, ObjectLockMode: tc.mode})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || l.mode != tc.want {
				t.Fatalf("got mode %q, %v; want %q", l.mode, err, tc.want)
			}
		})
	}
}

// TestObjectLockSpares: the probe and the keys the caller names stay
// deletable; every other object gets the retention, on uploads and copies.
func TestObjectLockSpares(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 500, time.UTC)
	l, err := newObjectLock(Options{ObjectLockDays: 3, ObjectLockMode: LockCompliance,
		ObjectLockSkip: func(k string) bool { return path.Base(k) == "in-progress" }})
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return now }
	want := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	for key, locked := range map[string]bool{
		"db/production/20260501-120000/production.sqlite3.zst": true,
		"db/production/20260501-120000/manifest.json":          true,
		"db/production/20260501-120000/in-progress":            false,
		"db/production/" + ProbeKeyPrefix + "0123456789abcdef": false,
		ProbeKeyPrefix + "0123456789abcdef":                    false,
	} {
		put := &s3.PutObjectInput{Key: aws.String(key)}
		l.applyPut(put)
		cp := &s3.CopyObjectInput{Key: aws.String(key)}
		l.applyCopy(cp)
		if !locked {
			if put.ObjectLockMode != "" || put.ObjectLockRetainUntilDate != nil || put.ChecksumAlgorithm != "" || cp.ObjectLockMode != "" {
				t.Errorf("%s is locked; it must stay deletable", key)
			}
			continue
		}
		if put.ObjectLockMode != types.ObjectLockModeCompliance || !aws.ToTime(put.ObjectLockRetainUntilDate).Equal(want) ||
			cp.ObjectLockMode != types.ObjectLockModeCompliance || !aws.ToTime(cp.ObjectLockRetainUntilDate).Equal(want) {
			t.Errorf("%s: put %q until %v, copy %q until %v; want %s until %s", key, put.ObjectLockMode, put.ObjectLockRetainUntilDate,
				cp.ObjectLockMode, cp.ObjectLockRetainUntilDate, LockCompliance, want)
		}
		if put.ChecksumAlgorithm != types.ChecksumAlgorithmCrc32 {
			t.Errorf("%s: a locked upload must carry a checksum, got %q", key, put.ChecksumAlgorithm)
		}
	}
}
