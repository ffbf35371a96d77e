package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/s3store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/storetest"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

func newBackend(t *testing.T, o s3store.Options) *s3store.Backend {
	t.Helper()
	b, err := s3store.New(t.Context(), o)
	if err != nil {
		t.Fatalf("New(%v): %v", o, err)
	}
	return b
}

func serverOptions(srv *testutil.S3Server, bucket string) s3store.Options {
	return s3store.Options{
		Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region, ForcePathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	}
}

func TestContract(t *testing.T) {
	srv := testutil.StartS3(t)
	var n atomic.Int32
	start := time.Now()
	t.Cleanup(func() { t.Logf("storetest suite against versitygw: %v", time.Since(start).Round(time.Millisecond)) })
	storetest.Run(t, func(t *testing.T) store.Backend {
		bucket := fmt.Sprintf("contract-%d", n.Add(1))
		srv.CreateBucket(t, bucket)
		t.Cleanup(func() { requireNoUploads(t, srv, bucket) })
		return newBackend(t, serverOptions(srv, bucket))
	})
}

// requireNoUploads fails when a failed Put left multipart parts behind.
func requireNoUploads(t *testing.T, srv *testutil.S3Server, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Errorf("list multipart uploads: %v", err)
		return
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload %s of %s left behind", aws.ToString(u.UploadId), aws.ToString(u.Key))
	}
}

type operation struct {
	name string
	call func(ctx context.Context, b *s3store.Backend) error
}

// ops lists one call of each Backend method.
func ops() []operation {
	return []operation{
		{"Check", func(ctx context.Context, b *s3store.Backend) error { return b.Check(ctx) }},
		{"Put", func(ctx context.Context, b *s3store.Backend) error {
			return b.Put(ctx, "g/db", strings.NewReader("data"), 4)
		}},
		{"Get", func(ctx context.Context, b *s3store.Backend) error {
			rc, err := b.Get(ctx, "g/db")
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"List", func(ctx context.Context, b *s3store.Backend) error { _, err := b.List(ctx, "g/"); return err }},
		{"Delete", func(ctx context.Context, b *s3store.Backend) error { return b.Delete(ctx, []string{"g/db"}) }},
	}
}

func TestErrorsAgainstServer(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.CreateBucket(t, "present")
	closed := closedPort(t)
	wrongSecret := "wrong-secret-" + strings.Repeat("x", 20)
	cases := []struct {
		name    string
		mod     func(o *s3store.Options)
		want    string
		notWant []string
	}{
		{"wrong bucket", func(o *s3store.Options) { o.Bucket = "no-such-bucket" },
			`bucket "no-such-bucket" does not exist at ` + srv.Endpoint, nil},
		{"wrong secret", func(o *s3store.Options) { o.SecretAccessKey = wrongSecret },
			"S3 credentials rejected (SignatureDoesNotMatch): check access_key_id and secret_access_key",
			[]string{wrongSecret, srv.SecretKey}},
		// versitygw says 404 XAdminUserNotFound where AWS says 403 InvalidAccessKeyId.
		{"wrong access key", func(o *s3store.Options) { o.AccessKeyID = "AKIANOBODY" },
			"S3 credentials rejected (XAdminUserNotFound)", []string{srv.SecretKey}},
		{"unreachable endpoint", func(o *s3store.Options) { o.Endpoint = closed },
			"cannot connect to S3 endpoint " + closed + ": connection refused", nil},
	}
	for _, c := range cases {
		for _, op := range ops() {
			t.Run(c.name+"/"+op.name, func(t *testing.T) {
				t.Parallel()
				o := serverOptions(srv, "present")
				c.mod(&o)
				b := newBackend(t, o)
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				start := time.Now()
				err := op.call(ctx, b)
				if err == nil {
					t.Fatalf("%s succeeded, want an error", op.name)
				}
				t.Logf("%s: %v (%v)", op.name, err, time.Since(start).Round(time.Millisecond))
				msg := err.Error()
				if !strings.Contains(msg, c.want) {
					t.Errorf("error = %q, want it to contain %q", msg, c.want)
				}
				for _, s := range c.notWant {
					if strings.Contains(msg, s) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), s) {
						t.Errorf("error reveals a secret: %q", msg)
					}
				}
				if strings.Contains(msg, "\n") || errors.Is(err, store.ErrNotFound) {
					t.Errorf("error = %q: want one line, not ErrNotFound", msg)
				}
				if d := time.Since(start); d > 15*time.Second {
					t.Errorf("took %v, want a fast failure", d)
				}
			})
		}
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

const xmlError = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>req-42</RequestId></Error>`

// TestErrorsFromFakeServer covers answers versitygw cannot be made to give.
func TestErrorsFromFakeServer(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		op      operation
		want    string
	}{
		{"500 on Put", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, xmlError, "InternalError", "We encountered an internal error.")
		}, ops()[1], "S3 error InternalError (HTTP 500) from http://"},
		{"403 on Put (read-only key)", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				return // HeadBucket succeeds
			}
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, xmlError, "AccessDenied", "Access Denied")
		}, ops()[0], `access denied to bucket "b" at http://`},
		{"HTML instead of S3", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Welcome to nginx!</body></html>")
		}, ops()[0], "an S3 endpoint?"},
		{"text instead of S3", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "hello")
		}, ops()[3], "is it an S3 endpoint?"},
		{"per-object delete error", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Content-MD5") == "" {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, xmlError, "InvalidRequest", "Missing required header for this request: Content-MD5")
				return
			}
			fmt.Fprint(w, `<DeleteResult><Error><Key>g/db</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>`)
		}, ops()[4], "delete failed for g/db: AccessDenied: Access Denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(c.handler)
			t.Cleanup(ts.Close)
			b := newBackend(t, s3store.Options{
				Bucket: "b", Endpoint: ts.URL, ForcePathStyle: true,
				AccessKeyID: "AK", SecretAccessKey: "SK", HTTPClient: ts.Client(),
			})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := c.op.call(ctx, b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s error = %v, want it to contain %q", c.op.name, err, c.want)
			}
			t.Logf("%s: %v", c.op.name, err)
			var ae smithy.APIError
			var de *store.DeleteError
			if !errors.As(err, &ae) && !errors.As(err, &de) && !strings.Contains(c.name, " instead of S3") {
				t.Errorf("the SDK error is not wrapped: %#v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	cases := []struct {
		name string
		o    s3store.Options
		want string
	}{
		{"no bucket", s3store.Options{}, "bucket is empty"},
		{"bucket with path", s3store.Options{Bucket: "b/prefix"}, "must not contain"},
		{"half credentials", s3store.Options{Bucket: "b", AccessKeyID: "AK"}, "set both"},
		{"tiny parts", s3store.Options{Bucket: "b", PartSize: 1 << 20}, "below the S3 minimum"},
		{"negative concurrency", s3store.Options{Bucket: "b", Concurrency: -1}, "negative"},
		{"endpoint without scheme", s3store.Options{Bucket: "b", Endpoint: "s3.example.com"}, "https://host"},
		{"bucket in endpoint", s3store.Options{Bucket: "b", Endpoint: "https://b.nyc3.digitaloceanspaces.com"}, "https://nyc3.digitaloceanspaces.com"},
		{"endpoint with password", s3store.Options{Bucket: "b", Endpoint: "https://u:hunter2@s3.example.com"}, "must not contain credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s3store.New(t.Context(), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("New() error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	o := s3store.Options{Bucket: "b", Endpoint: "https://s3.example.com", AccessKeyID: "AK", SecretAccessKey: "hunter2"}
	b := newBackend(t, o)
	for _, s := range []string{fmt.Sprint(o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), b.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if got, want := b.String(), "s3://b at https://s3.example.com"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := newBackend(t, s3store.Options{Bucket: "b"}).String(), "s3://b"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
