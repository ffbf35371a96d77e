// Package s3store keeps backup objects in an S3-compatible bucket (AWS S3,
// DigitalOcean Spaces, Cloudflare R2, Backblaze B2, MinIO, versitygw, ...).
//
// Check writes, reads back and deletes a probe object named
// ProbeKeyPrefix + 16 random hex digits at the top of the bucket, so that a
// wrong bucket, bad credentials and read-only credentials fail before any
// backup work starts.
package s3store

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Defaults and limits.
const (
	DefaultRegion      = "us-east-1"
	DefaultPartSize    = 5 << 20 // multipart part size; memory use is about (Concurrency+1) * PartSize
	DefaultConcurrency = 4
	// ProbeKeyPrefix starts the key of the object Check writes and removes.
	ProbeKeyPrefix = ".sqlite-backup-action-probe-"

	maxDeleteBatch = 1000 // DeleteObjects limit
	dialTimeout    = 15 * time.Second
	cleanupTimeout = 30 * time.Second // for aborts and probe removal after ctx ends
)

var _ store.Backend = (*Backend)(nil)

// Options configures New. Only Bucket is required.
type Options struct {
	Bucket          string
	Endpoint        string // e.g. "https://nyc3.digitaloceanspaces.com"; empty for AWS
	Region          string // default DefaultRegion
	AccessKeyID     string // with SecretAccessKey; both empty: the default AWS chain
	SecretAccessKey string
	ForcePathStyle  bool
	PartSize        int64        // default DefaultPartSize, at least 5 MiB
	Concurrency     int          // parts in flight per Put; default DefaultConcurrency
	HTTPClient      *http.Client // optional, used as is (AWS_CA_BUNDLE is not applied to it)
	// Retries is how often a request that failed transiently is retried
	// (0: the SDK default of 3 attempts in all).
	Retries int
	// ProbePrefix is put before the probe key Check writes, e.g.
	// "db_backups/production/", so prefix-scoped credentials pass Check.
	ProbePrefix string
	// ObjectLockDays > 0 gives every object Put or Copy writes an Object
	// Lock retention of that many days, in ObjectLockMode (LockGovernance,
	// the default, or LockCompliance); not Check's probe, nor the keys
	// ObjectLockSkip reports, which must stay deletable. The bucket must
	// have Object Lock enabled.
	ObjectLockDays int
	ObjectLockMode string
	ObjectLockSkip func(key string) bool
}

// String describes the options without the secret.
func (o Options) String() string {
	secret := ""
	if o.SecretAccessKey != "" {
		secret = "redacted"
	}
	return fmt.Sprintf("{Bucket:%s Endpoint:%s Region:%s AccessKeyID:%s SecretAccessKey:%s ForcePathStyle:%t PartSize:%d Concurrency:%d}",
		o.Bucket, o.Endpoint, o.Region, o.AccessKeyID, secret, o.ForcePathStyle, o.PartSize, o.Concurrency)
}

// GoString keeps %#v from printing the secret.
func (o Options) GoString() string { return "s3store.Options" + o.String() }

// Backend is a store.Backend over one bucket.
type Backend struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	endpoint string // "" for AWS
	region   string
	// probePrefix goes before the key of Check's probe object.
	probePrefix string
	lock        objectLock
}

// New builds a client; it makes no request (call Check for that).
func New(ctx context.Context, o Options) (*Backend, error) {
	switch {
	case o.Bucket == "":
		return nil, errors.New("s3 store: bucket is empty")
	case strings.Contains(o.Bucket, "/"):
		return nil, fmt.Errorf("s3 store: bucket %q must not contain \"/\"", o.Bucket)
	case (o.AccessKeyID == "") != (o.SecretAccessKey == ""):
		return nil, errors.New("s3 store: set both access_key_id and secret_access_key, or neither")
	case o.PartSize != 0 && o.PartSize < manager.MinUploadPartSize:
		return nil, fmt.Errorf("s3 store: part size %d is below the S3 minimum of %d bytes", o.PartSize, manager.MinUploadPartSize)
	case o.Concurrency < 0:
		return nil, fmt.Errorf("s3 store: concurrency %d is negative", o.Concurrency)
	}
	lock, err := newObjectLock(o)
	if err != nil {
		return nil, err
	}
	b := &Backend{bucket: o.Bucket, region: o.Region, probePrefix: o.ProbePrefix, lock: lock}
	if b.region == "" {
		b.region = DefaultRegion
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		switch {
		case err == nil && u.User != nil:
			return nil, errors.New("s3 store: endpoint must not contain credentials")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "":
			return nil, fmt.Errorf("s3 store: endpoint %q must look like https://host[:port]", o.Endpoint)
		}
		if strings.HasPrefix(u.Host, o.Bucket+".") {
			return nil, fmt.Errorf("s3 store: endpoint %q starts with the bucket name: give the bare endpoint, e.g. https://%s", o.Endpoint, strings.TrimPrefix(u.Host, o.Bucket+"."))
		}
		b.endpoint = strings.TrimSuffix(o.Endpoint, "/")
	}
	httpClient := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout })
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(b.region), config.WithHTTPClient(httpClient)}
	if o.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS configuration: %w", err)
	}
	b.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = o.ForcePathStyle
		if o.Retries > 0 {
			// The SDK retries 5xx, SlowDown, throttling and resets with
			// exponential backoff and jitter; 4xx fail at once.
			so.RetryMaxAttempts = o.Retries + 1
		}
		if o.HTTPClient != nil {
			// Set here, not in LoadDefaultConfig, which refuses a plain
			// *http.Client when AWS_CA_BUNDLE is set.
			so.HTTPClient = o.HTTPClient
		}
		if b.endpoint != "" {
			so.BaseEndpoint = aws.String(b.endpoint)
			// Spaces, R2 and B2 reject the checksum headers and trailers the
			// SDK sends by default.
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	b.uploader = manager.NewUploader(b.client, func(u *manager.Uploader) {
		u.PartSize = cmp.Or(o.PartSize, DefaultPartSize)
		u.Concurrency = cmp.Or(o.Concurrency, DefaultConcurrency)
		u.LeavePartsOnError = true // Put aborts itself, with a context that still works
		if b.endpoint != "" {
			// The uploader has its own setting: it ignores the client's.
			u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
	})
	return b, nil
}

// String returns "s3://bucket", plus " at <endpoint>" for a custom endpoint.
func (b *Backend) String() string {
	if b.endpoint == "" {
		return "s3://" + b.bucket
	}
	return "s3://" + b.bucket + " at " + b.endpoint
}

// Put streams r through the multipart uploader: parts of PartSize are
// buffered, never the whole object. A failed multipart upload is aborted.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := b.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	return nil
}

func (b *Backend) put(ctx context.Context, key string, r io.Reader, size int64) error {
	if key == "" {
		return errors.New("key is empty")
	}
	// Wrapping also hides io.Seeker, so the uploader never seeks the caller's reader.
	src := &countingReader{r: r, want: size}
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: &key, Body: src}
	b.lock.applyPut(in)
	_, err := b.uploader.Upload(ctx, in)
	if err == nil {
		return nil
	}
	var abortErr error
	var mf manager.MultiUploadFailure
	if errors.As(err, &mf) && mf.UploadID() != "" {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, abortErr = b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: &b.bucket, Key: &key, UploadId: aws.String(mf.UploadID()),
		})
		if apiCode(abortErr) == "NoSuchUpload" {
			abortErr = nil
		}
	}
	if src.err != nil && errors.Is(err, src.err) {
		err = fmt.Errorf("read source: %w", src.err)
	} else {
		err = b.explain(b.lock.explain(err, b.bucket, in.ObjectLockMode))
	}
	if abortErr != nil {
		return fmt.Errorf("%w; also abort multipart upload %s: %w", err, mf.UploadID(), b.explain(abortErr))
	}
	return err
}

// Get returns the object's body, which honours ctx while it is read.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		// Only these codes: versitygw answers an unknown access key with 404
		// XAdminUserNotFound, which must not read as "no such backup".
		if code := apiCode(err); code == "NoSuchKey" || code == "NotFound" {
			err = &explained{msg: "not found in " + b.String(), err: err, sentinel: store.ErrNotFound}
		}
		return nil, fmt.Errorf("download %s: %w", key, b.explain(err))
	}
	return out.Body, nil
}

// List follows the ListObjectsV2 paginator to the end.
func (b *Backend) List(ctx context.Context, prefix string) ([]store.Object, error) {
	var objs []store.Object
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, b.explain(err))
		}
		if page.Name == nil && page.MaxKeys == nil && page.IsTruncated == nil {
			// The SDK decodes any 200 body, even "hello", as an empty page.
			return nil, fmt.Errorf("list %q: unexpected response from %s, is it an S3 endpoint?", prefix, b.where())
		}
		for _, o := range page.Contents {
			objs = append(objs, store.Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	slices.SortFunc(objs, func(x, y store.Object) int { return strings.Compare(x.Key, y.Key) })
	return objs, nil
}

// Delete removes keys with DeleteObjects, at most 1000 per request, in quiet
// mode. Per-key failures are collected into a *store.DeleteError; a request
// that fails as a whole stops Delete.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	failed := map[string]string{}
	for batch := range slices.Chunk(keys, maxDeleteBatch) {
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			ids[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}, withContentMD5)
		if err != nil {
			return fmt.Errorf("delete %d objects (first %s): %w", len(batch), batch[0], b.explain(err))
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" { // already gone: fine
				continue
			}
			failed[aws.ToString(e.Key)] = aws.ToString(e.Code) + ": " + aws.ToString(e.Message)
		}
	}
	if len(failed) > 0 {
		return &store.DeleteError{Failed: failed}
	}
	return nil
}

// Check runs HeadBucket, then writes, reads back and deletes a probe object.
// Credentials that can write but not list fail too: backups must be listed.
// The probe is written under Options.ProbePrefix.
func (b *Backend) Check(ctx context.Context) error {
	_, headErr := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if status := httpStatus(headErr); headErr != nil && (status < 400 || status > 499) {
		return fmt.Errorf("check: %w", b.explain(headErr))
	}
	// A 4xx HEAD response has no body, so no error code: the probe write
	// below tells a missing bucket, bad keys and missing permissions apart.
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := b.probePrefix + ProbeKeyPrefix + hex.EncodeToString(rnd[:])
	body := "sqlite-backup-action write probe " + key + "\n"
	if err := b.put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("check: write probe object: %w", err)
	}
	readErr := b.readBack(ctx, key, body)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := errors.Join(readErr, b.Delete(dctx, []string{key})); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if headErr != nil {
		return fmt.Errorf("check: %w", &explained{err: headErr, msg: fmt.Sprintf(
			"HeadBucket on %q failed (HTTP %d) although writes work: grant s3:ListBucket, backups must be listed", b.bucket, httpStatus(headErr))})
	}
	return nil
}

func (b *Backend) readBack(ctx context.Context, key, want string) error {
	rc, err := b.Get(ctx, key)
	if err == nil {
		var got []byte
		got, err = io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
		err = cmp.Or(b.explain(err), rc.Close())
		if err == nil && string(got) != want {
			err = fmt.Errorf("got %d bytes that differ from the %d written: is %s an S3 endpoint?", len(got), len(want), b.where())
		}
	}
	if err != nil {
		return fmt.Errorf("read back probe object: %w", err)
	}
	return nil
}

// countingReader checks the byte count against want (when want >= 0) and
// remembers the source's own error so Put can name it.
type countingReader struct {
	r    io.Reader
	want int64
	n    int64
	err  error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	switch {
	case c.want >= 0 && c.n > c.want:
		err = fmt.Errorf("source yielded more than the %d bytes announced", c.want)
	case err == io.EOF && c.want >= 0 && c.n != c.want:
		err = fmt.Errorf("source yielded %d bytes, want %d", c.n, c.want)
	case err == nil || err == io.EOF:
		return n, err
	}
	c.err = err
	return n, err
}

// withContentMD5 adds the Content-MD5 header to DeleteObjects: S3 itself
// accepts the SDK's CRC32 instead, but many S3-compatible servers still
// demand the MD5 (aws/aws-sdk-go-v2#3258).
func withContentMD5(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("sbaContentMD5",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if !ok || req.GetStream() == nil {
					return next.HandleBuild(ctx, in)
				}
				body, err := io.ReadAll(req.GetStream())
				if err == nil {
					err = req.RewindStream()
				}
				if err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, err
				}
				sum := md5.Sum(body)
				req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	})
}

// explained is an SDK error retold in one line an operator can act on. The
// original stays reachable with errors.Is and errors.As.
type explained struct {
	msg      string
	err      error
	sentinel error // optional, e.g. store.ErrNotFound
}

func (e *explained) Error() string { return e.msg }

func (e *explained) Unwrap() []error {
	if e.sentinel != nil {
		return []error{e.sentinel, e.err}
	}
	return []error{e.err}
}

func (b *Backend) where() string {
	if b.endpoint == "" {
		return "AWS S3 (region " + b.region + ")"
	}
	return b.endpoint
}

func (b *Backend) noBucket() string {
	if b.endpoint == "" {
		return fmt.Sprintf("bucket %q does not exist in AWS region %s", b.bucket, b.region)
	}
	return fmt.Sprintf("bucket %q does not exist at %s", b.bucket, b.endpoint)
}

// explain translates the errors an operator meets most: wrong bucket, bad
// keys, missing permissions, wrong region, unreachable endpoint.
func (b *Backend) explain(err error) error {
	var ex *explained
	if err == nil || errors.As(err, &ex) {
		return err
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return &explained{msg: ctxErr.Error(), err: err}
		}
	}
	msg := ""
	code, status := apiCode(err), httpStatus(err)
	apiMsg, reqID := apiDetail(err)
	var (
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		netErr   net.Error
		decodErr *smithy.DeserializationError
	)
	switch {
	case code == "NoSuchBucket":
		msg = b.noBucket()
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "XAdminUserNotFound":
		msg = fmt.Sprintf("S3 credentials rejected (%s): check access_key_id and secret_access_key", code)
	case code == "RequestTimeTooSkewed":
		msg = "S3 rejected the request time (RequestTimeTooSkewed): this machine's clock is wrong"
	case code == "PermanentRedirect" || status == http.StatusMovedPermanently:
		msg = fmt.Sprintf("bucket %q is not in region %s (%s): set region to the bucket's region", b.bucket, b.region, cmp.Or(code, "HTTP 301"))
	case code == "AuthorizationHeaderMalformed":
		msg = fmt.Sprintf("S3 rejected the request (%s: %s): check region %q", code, apiMsg, b.region)
	case code == "AccessDenied" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		msg = fmt.Sprintf("access denied to bucket %q at %s (%s): the credentials lack a permission this needs", b.bucket, b.where(), cmp.Or(code, "HTTP 403"))
	case code != "":
		msg = fmt.Sprintf("S3 error %s (HTTP %d) from %s: %s", code, status, b.where(), apiMsg)
		if reqID != "" {
			msg += " (request id " + reqID + ")"
		}
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("cannot resolve S3 endpoint host %q: %s", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("cannot connect to S3 endpoint %s: connection refused", b.where())
	case errors.As(err, &certErr):
		msg = fmt.Sprintf("TLS certificate of %s not trusted: %v", b.where(), certErr.Err)
	case errors.As(err, &decodErr):
		msg = fmt.Sprintf("unexpected response from %s, is it an S3 endpoint? %v", b.where(), decodErr.Err)
	case errors.As(err, &netErr) && netErr.Timeout():
		msg = fmt.Sprintf("S3 endpoint %s did not answer in time: %v", b.where(), netErr)
	case status != 0:
		msg = fmt.Sprintf("S3 answered HTTP %d from %s", status, b.where())
	default:
		return err
	}
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		msg += fmt.Sprintf(" (after %d attempts)", maxErr.Attempt)
	}
	return &explained{msg: msg, err: err}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// apiDetail returns the server's message and request id, when it sent them.
func apiDetail(err error) (msg, requestID string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg = ae.ErrorMessage()
	}
	var re interface{ ServiceRequestID() string }
	if errors.As(err, &re) {
		requestID = re.ServiceRequestID()
	}
	return msg, requestID
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
