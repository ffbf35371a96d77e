package testutil

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// LinkProxy forwards TCP connections on loopback to a target through an
// emulated wide-area link: each direction is limited to a rate and every
// chunk is delayed by a one-way latency. It stands in for `tc netem` (not
// available in every kernel) between a GitHub runner and a VPS.
type LinkProxy struct {
	Host string
	Port int
	open openConns
}

// Addr is host:port of the proxy.
func (p *LinkProxy) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// maxQueuedChunks bounds the bytes in flight in one direction (32 KiB each).
const maxQueuedChunks = 512

// StartLinkProxy listens on 127.0.0.1 and forwards to target at
// bitsPerSecond each way with oneWay delay.
func StartLinkProxy(t testing.TB, target string, bitsPerSecond int64, oneWay time.Duration) *LinkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("link proxy: %v", err)
	}
	p := &LinkProxy{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); p.open.closeAll(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < maxProxyConns; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				up, release, ok := p.open.connect(c, target)
				if !ok {
					return
				}
				defer release()
				done := make(chan struct{}, 2)
				go func() { shape(up, c, bitsPerSecond, oneWay); done <- struct{}{} }()
				go func() { shape(c, up, bitsPerSecond, oneWay); done <- struct{}{} }()
				<-done
				c.Close()
				up.Close()
				<-done
			}()
		}
	}()
	return p
}

type chunk struct {
	b   []byte
	due time.Time
}

// shape copies src to dst, each chunk leaving no earlier than its arrival
// plus the delay, and no faster than the rate (a token bucket by time).
func shape(dst, src net.Conn, bitsPerSecond int64, delay time.Duration) {
	q := make(chan chunk, maxQueuedChunks)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{b: buf[:n], due: time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	next := time.Now()
	for c := range q {
		send := c.due
		if next.After(send) {
			send = next
		}
		if d := time.Until(send); d > 0 {
			time.Sleep(d)
		}
		next = send.Add(time.Duration(int64(len(c.b)) * 8 * int64(time.Second) / bitsPerSecond))
		if _, err := dst.Write(c.b); err != nil {
			for range q { // drain so the reader ends
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
