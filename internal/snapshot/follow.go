package snapshot

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFinished is what reading a Growing file meets when the helper
// stopped before it reported the file finished.
var ErrNotFinished = errors.New("the helper stopped before it finished the file")

// pair runs produce, which reports files in the helper's order (a
// compressed file first as Growing, then finished), and calls emit with
// each file on the caller's goroutine, one at a time. A Growing file's
// Final delivers its finished report while emit is still reading it; it is
// closed without one if produce stops first. When emit fails, produce's
// context is cancelled.
func pair(ctx context.Context, produce func(ctx context.Context, report func(File) error) error, emit func(File) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := make(chan File)
	produced := make(chan struct{})
	var produceErr error
	go func() {
		defer close(produced)
		defer close(files)
		growing := map[string]chan File{}
		defer func() {
			for _, ch := range growing {
				close(ch)
			}
		}()
		produceErr = produce(ctx, func(f File) error {
			if ch, ok := growing[f.Name]; ok {
				if f.Growing {
					return fmt.Errorf("%s was reported growing twice", f.Name)
				}
				delete(growing, f.Name)
				ch <- f
				close(ch)
				return nil
			}
			if f.Growing {
				ch := make(chan File, 1)
				growing[f.Name] = ch
				f.Final = ch
			}
			select {
			case files <- f:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var emitErr error
	for f := range files {
		if emitErr = emit(f); emitErr != nil {
			cancel() // produce's next report fails: nobody receives any more
			break
		}
	}
	<-produced
	switch {
	case emitErr == nil:
		return produceErr
	case produceErr != nil && errors.Is(emitErr, ErrNotFinished):
		return produceErr // why the helper stopped is the root cause
	default:
		return emitErr
	}
}
