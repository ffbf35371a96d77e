package s3store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

var _ store.Copier = (*Backend)(nil)

// maxCopyObject is the largest object one CopyObject call can copy.
const maxCopyObject = 5 << 30

// Copy copies src to dst inside the bucket without downloading it
// (CopyObject); objects too large for one CopyObject are streamed through
// this process instead.
func (b *Backend) Copy(ctx context.Context, src, dst string) error {
	head, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(src)})
	if err != nil {
		if httpStatus(err) == 404 { // HEAD answers carry no error code
			err = &explained{msg: "not found in " + b.String(), err: err, sentinel: store.ErrNotFound}
		}
		return fmt.Errorf("copy %s: %w", src, b.explain(err))
	}
	if aws.ToInt64(head.ContentLength) > maxCopyObject {
		rc, err := b.Get(ctx, src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		defer rc.Close()
		return b.Put(ctx, dst, rc, aws.ToInt64(head.ContentLength))
	}
	source := b.bucket + "/" + strings.ReplaceAll(url.PathEscape(src), "%2F", "/")
	in := &s3.CopyObjectInput{Bucket: &b.bucket, Key: aws.String(dst), CopySource: aws.String(source)}
	b.lock.applyCopy(in)
	if _, err := b.client.CopyObject(ctx, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, b.explain(b.lock.explain(err, b.bucket, in.ObjectLockMode)))
	}
	return nil
}
