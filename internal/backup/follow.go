package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
)

const (
	// followChunk is one read of a growing file: over SFTP it is split into
	// concurrent requests, and with two in flight the link stays busy.
	followChunk = 2 << 20
	// followPoll is how long to wait when the reader has caught up with
	// the helper's compressor.
	followPoll = 20 * time.Millisecond
)

// follower reads a file that the helper is still writing, from the start
// to the size in its finished report: what is there is read at once, and
// when the reader catches up it waits for more (or for the report). Reads
// run one chunk ahead of the consumer on their own goroutine.
type follower struct {
	chunks chan chunk
	free   chan []byte
	ctx    context.Context
	cur    []byte // what is left of whole
	whole  []byte // the buffer cur is from
	err    error
	final  snapshot.File
	stop   context.CancelFunc
	done   chan struct{}
}

type chunk struct {
	b   []byte
	err error // io.EOF once the whole file is read
}

// follow starts reading ra, which grows until final delivers its report.
func follow(ctx context.Context, ra io.ReaderAt, final <-chan snapshot.File) *follower {
	ctx, stop := context.WithCancel(ctx)
	f := &follower{ctx: ctx, chunks: make(chan chunk, 1), free: make(chan []byte, 2), stop: stop, done: make(chan struct{})}
	f.free <- make([]byte, followChunk)
	f.free <- make([]byte, followChunk)
	go f.run(ctx, ra, final)
	return f
}

func (f *follower) run(ctx context.Context, ra io.ReaderAt, final <-chan snapshot.File) {
	defer close(f.done)
	send := func(c chunk) bool {
		select {
		case f.chunks <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var off int64
	size := int64(-1) // until the finished report
	for {
		var buf []byte
		select {
		case buf = <-f.free:
		case <-ctx.Done():
			return
		}
		if size >= 0 {
			if off > size {
				send(chunk{err: fmt.Errorf("file is longer than the %d bytes the helper reported", size)})
				return
			}
			if off == size {
				// A file longer than reported is as wrong as a shorter one.
				if n, _ := ra.ReadAt(buf[:1], off); n > 0 {
					send(chunk{err: fmt.Errorf("file is longer than the %d bytes the helper reported", size)})
				} else {
					send(chunk{err: io.EOF})
				}
				return
			}
			buf = buf[:min(int64(len(buf)), size-off)]
		}
		n, err := ra.ReadAt(buf, off)
		off += int64(n)
		if n > 0 {
			if !send(chunk{b: buf[:n]}) {
				return
			}
			continue
		}
		f.free <- buf[:cap(buf)]
		if err != nil && !errors.Is(err, io.EOF) {
			send(chunk{err: err})
			return
		}
		if size >= 0 {
			send(chunk{err: fmt.Errorf("file ended at %d bytes, the helper reported %d", off, size)})
			return
		}
		// Caught up with the compressor: wait for more, or for the end.
		select {
		case fin, ok := <-final:
			if !ok {
				send(chunk{err: fmt.Errorf("%w (read %d bytes of it)", snapshot.ErrNotFinished, off)})
				return
			}
			f.final, size = fin, fin.StoredSize
		case <-time.After(followPoll):
		case <-ctx.Done():
			return
		}
	}
}

func (f *follower) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		var c chunk
		select {
		case c = <-f.chunks:
		case <-f.done:
			select {
			case c = <-f.chunks: // sent before the reader stopped
			default:
				c.err = fmt.Errorf("read growing file: %w", context.Cause(f.ctx))
			}
		}
		if c.err != nil {
			f.err = c.err
			continue
		}
		f.cur, f.whole = c.b, c.b[:cap(c.b)]
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	if len(f.cur) == 0 {
		f.free <- f.whole
		f.cur, f.whole = nil, nil
	}
	return n, nil
}

// Final is the helper's finished report; valid once Read returned io.EOF.
func (f *follower) Final() snapshot.File { return f.final }

// Close stops the reads and waits for the reading goroutine.
func (f *follower) Close() error {
	f.stop()
	<-f.done
	return nil
}
