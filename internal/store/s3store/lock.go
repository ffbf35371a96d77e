package s3store

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Object Lock retention modes, as S3 names them.
const (
	// LockGovernance: users with s3:BypassGovernanceRetention can still
	// delete or shorten the retention.
	LockGovernance = string(types.ObjectLockModeGovernance)
	// LockCompliance: nobody, not even the account root, can delete the
	// object or shorten its retention until the date has passed.
	LockCompliance = string(types.ObjectLockModeCompliance)
	// DefaultLockMode is the mode when Options.ObjectLockMode is empty.
	DefaultLockMode = LockGovernance

	maxLockDays = 36500 // S3's own limit for a default retention
)

// objectLock is the retention Put and Copy give the objects they write.
// The zero value locks nothing.
type objectLock struct {
	mode types.ObjectLockMode
	days int
	skip func(key string) bool // keys that must stay deletable; may be nil
	now  func() time.Time
}

// newObjectLock checks the Object Lock options.
func newObjectLock(o Options) (objectLock, error) {
	if o.ObjectLockDays == 0 {
		return objectLock{}, nil
	}
	if o.ObjectLockDays < 0 || o.ObjectLockDays > maxLockDays {
		return objectLock{}, fmt.Errorf("s3 store: object lock days %d is not from 1 to %d", o.ObjectLockDays, maxLockDays)
	}
	mode := strings.ToUpper(strings.TrimSpace(o.ObjectLockMode))
	if mode == "" {
		mode = DefaultLockMode
	}
	if mode != LockGovernance && mode != LockCompliance {
		return objectLock{}, fmt.Errorf("s3 store: object lock mode %q is not %s or %s", o.ObjectLockMode, LockGovernance, LockCompliance)
	}
	return objectLock{mode: types.ObjectLockMode(mode), days: o.ObjectLockDays, skip: o.ObjectLockSkip, now: time.Now}, nil
}

// until returns the mode and retain-until date for key, or "" and nil when
// key is not to be locked: Check's probe and the keys skip names.
func (l objectLock) until(key string) (types.ObjectLockMode, *time.Time) {
	if l.days == 0 || strings.HasPrefix(path.Base(key), ProbeKeyPrefix) || (l.skip != nil && l.skip(key)) {
		return "", nil
	}
	t := l.now().UTC().Truncate(time.Second).Add(time.Duration(l.days) * 24 * time.Hour)
	return l.mode, &t
}

// applyPut sets the retention on an upload. S3 demands a checksum with
// Object Lock headers, so a CRC32 is sent even where the client sends
// none by default (custom endpoints).
func (l objectLock) applyPut(in *s3.PutObjectInput) {
	if in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.until(aws.ToString(in.Key)); in.ObjectLockMode != "" {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
}

// applyCopy sets the retention on a server-side copy: S3 never copies the
// source's retention.
func (l objectLock) applyCopy(in *s3.CopyObjectInput) {
	in.ObjectLockMode, in.ObjectLockRetainUntilDate = l.until(aws.ToString(in.Key))
}

// explain retells a refused lock: the bucket was not created with Object
// Lock enabled (S3 allows it only at creation).
func (l objectLock) explain(err error, bucket string, mode types.ObjectLockMode) error {
	if mode == "" || apiCode(err) != "InvalidRequest" {
		return err
	}
	if msg, _ := apiDetail(err); !strings.Contains(strings.ToLower(strings.ReplaceAll(msg, " ", "")), "objectlock") {
		return err
	}
	return &explained{err: err, msg: fmt.Sprintf(
		"bucket %q has no Object Lock configuration: object_lock_days needs a bucket created with Object Lock enabled (or set object_lock_days: 0)", bucket)}
}

// LockedUntil returns the date until which Object Lock retention keeps key
// from being deleted (it may have passed), or the zero time when it has none.
// A legal hold has no date and is not reported here.
func (b *Backend) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return time.Time{}, fmt.Errorf("object lock of %s: %w", key, b.explain(err))
	}
	if out.ObjectLockMode == "" || out.ObjectLockRetainUntilDate == nil {
		return time.Time{}, nil
	}
	return *out.ObjectLockRetainUntilDate, nil
}
