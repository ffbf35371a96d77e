package testutil

import (
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 test server is a real versitygw (Apache-2.0 S3 gateway) with its
// posix backend: every bucket is a directory under S3Server.Dir and every
// object a file below it (metadata in xattrs, or in a sidecar directory where
// the filesystem has none).
const (
	// EnvVersityGW names the versitygw binary, overriding the lookup.
	EnvVersityGW = "SBA_VERSITYGW"
	// VersityGWVersion is the pinned release; CI builds it into .ci/bin with
	// go install github.com/versity/versitygw/cmd/versitygw@v1.8.0.
	VersityGWVersion = "v1.8.0"

	s3Region       = "us-east-1"
	s3HealthPath   = "/health"
	s3StartTimeout = 15 * time.Second
	s3StopTimeout  = 5 * time.Second
	s3CallTimeout  = 30 * time.Second
	s3StartTries   = 3
)

// S3Server is a running versitygw on loopback.
type S3Server struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // posix root: one directory per bucket
	log       *syncBuffer
}

// Log returns what the server printed so far.
func (s *S3Server) Log() string { return s.log.String() }

// StartS3 runs versitygw for the duration of the test. The binary is $SBA_VERSITYGW,
// else <repo root>/.ci/bin/versitygw, else versitygw on PATH; when none is
// found the test is skipped, or fails in CI.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin, err := s3FindVersityGW()
	if err != nil {
		s3Skip(t, "versitygw "+VersityGWVersion+" (S3 server)", err)
		return nil
	}
	if bi, err := buildinfo.ReadFile(bin); err == nil && bi.Main.Version != VersityGWVersion {
		t.Logf("versitygw %s reports version %q; the tests pin %s", bin, bi.Main.Version, VersityGWVersion)
	}
	dir := t.TempDir()
	s := &S3Server{
		AccessKey: "SBA" + strings.ToUpper(s3RandHex(t, 8)),
		SecretKey: s3RandHex(t, 20),
		Region:    s3Region,
		Dir:       filepath.Join(dir, "buckets"),
		log:       &syncBuffer{},
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.log.String())
		}
	})
	sidecar := ""
	for try := 1; ; try++ {
		mark := len(s.log.String())
		err := s.start(t, bin, dir, sidecar)
		if err == nil {
			return s
		}
		out := s.log.String()[mark:]
		switch {
		case try >= s3StartTries:
			t.Fatalf("start versitygw (%s): %v", bin, err)
		case sidecar == "" && strings.Contains(out, "xattr"):
			// The filesystem lacks user xattrs: keep metadata in a sidecar dir.
			sidecar = filepath.Join(dir, "meta")
			if err := os.Mkdir(sidecar, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Logf("versitygw: no xattr support in %s, retrying with --sidecar", s.Dir)
		case strings.Contains(out, "address already in use"):
			t.Logf("versitygw: port taken, retrying")
		default:
			t.Fatalf("start versitygw (%s): %v", bin, err)
		}
	}
}

// start launches one versitygw process and waits until it answers. On
// success a cleanup stops it; on failure it is already stopped.
func (s *S3Server) start(t testing.TB, bin, dir, sidecar string) error {
	t.Helper()
	addr, err := s3FreeAddr()
	if err != nil {
		return err
	}
	s.Endpoint = "http://" + addr
	args := []string{"--port", addr, "--region", s.Region, "--health", s3HealthPath, "--quiet", "posix"}
	if sidecar != "" {
		args = append(args, "--sidecar", sidecar)
	}
	args = append(args, s.Dir)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// A clean environment: no stray VGW_* setting from the developer's shell,
	// and the keys stay out of the process list.
	cmd.Env = []string{"HOME=" + dir, "ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	fmt.Fprintf(s.log, "$ %s %s\n", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s3StartTimeout)
	defer cancel()
	if err := s3WaitHealthy(ctx, s.Endpoint+s3HealthPath, exited); err != nil {
		s3Stop(t, cmd, exited)
		return err
	}
	t.Cleanup(func() { s3Stop(t, cmd, exited) })
	return nil
}

// Client returns an SDK client for the server (path style, checksums only
// when required), for tests that look behind a store's back.
func (s *S3Server) Client() *s3.Client {
	cfg := aws.Config{
		Region:      s.Region,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// CreateBucket creates a bucket; names follow the S3 rules (lowercase, 3-63).
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s3CallTimeout)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %q: %v", name, err)
	}
}

// s3WaitHealthy polls the health endpoint until it answers 200, the process
// exits or ctx ends.
func s3WaitHealthy(ctx context.Context, url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check: HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-exited:
			return errors.New("versitygw exited before it was ready (see its output)")
		case <-ctx.Done():
			return fmt.Errorf("versitygw not ready after %s: %w", s3StartTimeout, errors.Join(ctx.Err(), last))
		case <-tick.C:
		}
	}
}

// s3Stop asks versitygw to shut down, then kills it after s3StopTimeout.
func s3Stop(t testing.TB, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	select {
	case <-exited:
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = cmd.Process.Kill()
	}
	select {
	case <-exited:
		return
	case <-time.After(s3StopTimeout):
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		t.Errorf("versitygw did not stop within %s of SIGTERM: killed", s3StopTimeout)
	case <-time.After(s3StopTimeout):
		t.Errorf("versitygw (pid %d) survived SIGKILL for %s", cmd.Process.Pid, s3StopTimeout)
	}
}

func s3FindVersityGW() (string, error) {
	if p := os.Getenv(EnvVersityGW); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvVersityGW, err)
		}
		return p, nil
	}
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".ci", "bin", "versitygw")
				if _, err := exec.LookPath(p); err == nil {
					return p, nil
				}
				tried = append(tried, p)
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("not found (set $%s, or install it into %s, or put it on PATH): %w",
			EnvVersityGW, strings.Join(tried, ", "), err)
	}
	return p, nil
}

// s3Skip skips the test when a dependency is missing, except in CI (CI=true)
// where it fails it.
func s3Skip(t testing.TB, what string, err error) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s unavailable in CI: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

// s3FreeAddr returns a loopback address that was free a moment ago; StartS3
// retries if another process takes it first.
func s3FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func s3RandHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
