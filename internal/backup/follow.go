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
	// followChunk is one read of a growing file (over SFTP, split into
	// concurrent requests); followDepth reads are in flight at once, so the
	// link stays busy across round trips.
	followChunk = 512 << 10
	followDepth = 6
	// followPoll is how long to wait when the reader has caught up with
	// the helper's compressor.
	followPoll = 20 * time.Millisecond
	// followStall is how long a growing file may stay the same size before
	// the helper is taken for stuck.
	followStall = 5 * time.Minute
)

// follower reads a file that the helper is still writing, from the start
// to the size in its finished report: what is there is read at once, and
// when the reader catches up it waits for more (or for the report). Reads
// run ahead of the consumer, several at once.
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
	return followStalling(ctx, ra, final, followStall)
}

// followStalling is follow with the time after which a file that does not
// grow fails the read.
func followStalling(ctx context.Context, ra io.ReaderAt, final <-chan snapshot.File, stall time.Duration) *follower {
	ctx, stop := context.WithCancel(ctx)
	// Buffers: the reads in flight, one queued for the consumer and the
	// one it is reading.
	const buffers = followDepth + 2
	f := &follower{ctx: ctx, chunks: make(chan chunk, 1), free: make(chan []byte, buffers), stop: stop, done: make(chan struct{})}
	for range buffers {
		f.free <- make([]byte, followChunk)
	}
	go f.run(ctx, ra, final, stall)
	return f
}

func (f *follower) run(ctx context.Context, ra io.ReaderAt, final <-chan snapshot.File, stall time.Duration) {
	defer close(f.done)
	send := func(c chunk) bool {
		select {
		case f.chunks <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	type read struct {
		off  int64
		buf  []byte
		n    int
		err  error
		done chan struct{}
	}
	grew := time.Now() // when off last moved
	var (
		off   int64       // bytes handed on
		next  int64       // where the next read starts
		size  = int64(-1) // until the finished report
		queue []*read     // reads in flight, in file order
	)
	// A read past what the compressor wrote comes back short; the reads
	// after it are dropped (their buffers come back) and the window
	// restarts where the short one ended.
	drop := func() bool {
		for _, r := range queue {
			select {
			case <-r.done:
				f.free <- r.buf[:cap(r.buf)]
			case <-ctx.Done():
				return false
			}
		}
		queue, next = nil, off
		return true
	}
	for {
		// Keep followDepth reads in flight while buffers are free.
		for len(queue) < followDepth && (size < 0 || next < size) {
			var buf []byte
			if len(queue) == 0 {
				select {
				case buf = <-f.free:
				case <-ctx.Done():
					return
				}
			} else {
				select {
				case buf = <-f.free:
				default:
				}
				if buf == nil {
					break
				}
			}
			if size >= 0 {
				buf = buf[:min(int64(len(buf)), size-next)]
			}
			r := &read{off: next, buf: buf, done: make(chan struct{})}
			go func() { r.n, r.err = ra.ReadAt(r.buf, r.off); close(r.done) }()
			queue = append(queue, r)
			next += int64(len(buf))
		}
		if len(queue) == 0 { // off == size: the whole file is handed on
			// A file longer than reported is as wrong as a shorter one.
			if n, _ := ra.ReadAt(make([]byte, 1), off); n > 0 {
				send(chunk{err: fmt.Errorf("file is longer than the %d bytes the helper reported", size)})
			} else {
				send(chunk{err: io.EOF})
			}
			return
		}
		r := queue[0]
		select {
		case <-r.done:
		case <-ctx.Done():
			return
		}
		queue = queue[1:]
		off += int64(r.n)
		if r.n > 0 {
			grew = time.Now()
			if !send(chunk{b: r.buf[:r.n]}) {
				return
			}
		} else {
			f.free <- r.buf[:cap(r.buf)]
		}
		if r.n == len(r.buf) {
			continue
		}
		if !drop() {
			return
		}
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			send(chunk{err: r.err})
			return
		}
		if size >= 0 {
			send(chunk{err: fmt.Errorf("file ended at %d bytes, the helper reported %d", off, size)})
			return
		}
		// Caught up with the compressor: wait for more, or for the end.
		if waited := time.Since(grew); waited > stall {
			send(chunk{err: fmt.Errorf("the helper wrote nothing more for %s (at %d bytes): is the host stuck (disk, CPU)?", waited.Round(time.Second), off)})
			return
		}
		select {
		case fin, ok := <-final:
			if !ok {
				send(chunk{err: fmt.Errorf("%w (read %d bytes of it)", snapshot.ErrNotFinished, off)})
				return
			}
			f.final, size = fin, fin.StoredSize
			if off > size {
				send(chunk{err: fmt.Errorf("file is longer than the %d bytes the helper reported", size)})
				return
			}
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
