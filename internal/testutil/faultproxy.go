package testutil

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// FaultProxy forwards TCP connections on loopback to a target and cuts
// chosen ones after a number of bytes (in either direction, counted
// together), the way a dropped link or a restarted NAT would.
type FaultProxy struct {
	Host string
	Port int
	ln   net.Listener
	// conns counts accepted connections.
	conns atomic.Int64
	cuts  atomic.Int64
	bytes atomic.Int64
	open  openConns
}

// openConns tracks a proxy's live connections so cleanup can end them: a
// client's idle keep-alive connection would otherwise never close.
type openConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// add tracks c; it reports false (and closes c) once closeAll has run.
func (o *openConns) add(c net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		c.Close()
		return false
	}
	if o.conns == nil {
		o.conns = map[net.Conn]struct{}{}
	}
	o.conns[c] = struct{}{}
	return true
}

func (o *openConns) remove(c net.Conn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.conns, c)
}

// connect tracks the accepted c and a new connection to target. release
// closes both and stops tracking them; ok is false (c closed) when the
// target refuses or the proxy is shutting down.
func (o *openConns) connect(c net.Conn, target string) (up net.Conn, release func(), ok bool) {
	if !o.add(c) {
		return nil, nil, false
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		o.remove(c)
		c.Close()
		return nil, nil, false
	}
	if !o.add(up) {
		o.remove(c)
		c.Close()
		return nil, nil, false
	}
	return up, func() {
		o.remove(up)
		o.remove(c)
		up.Close()
		c.Close()
	}, true
}

func (o *openConns) closeAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = true
	for c := range o.conns {
		c.Close()
	}
}

// maxProxyConns bounds how many connections a proxy serves.
const maxProxyConns = 1000

// StartFaultProxy listens on 127.0.0.1 and forwards to target. cutAfter[i]
// is the byte count after which connection i (0-based) is cut; 0 or past
// the end of the slice means it is never cut.
func StartFaultProxy(t testing.TB, target string, cutAfter ...int64) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p := &FaultProxy{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
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
			n := p.conns.Add(1) - 1
			var limit int64
			if int(n) < len(cutAfter) {
				limit = cutAfter[n]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(c, target, limit)
			}()
		}
	}()
	return p
}

// Addr is host:port of the proxy.
func (p *FaultProxy) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// Conns is how many connections the proxy accepted; Cuts how many it cut.
func (p *FaultProxy) Conns() int64 { return p.conns.Load() }

// Bytes is how many bytes went through the proxy, both ways.
func (p *FaultProxy) Bytes() int64 { return p.bytes.Load() }

// Cuts is how many connections the proxy cut.
func (p *FaultProxy) Cuts() int64 { return p.cuts.Load() }

func (p *FaultProxy) serve(c net.Conn, target string, limit int64) {
	up, release, ok := p.open.connect(c, target)
	if !ok {
		return
	}
	defer release()
	var moved atomic.Int64
	var once sync.Once
	cut := func() {
		once.Do(func() {
			p.cuts.Add(1)
			// RST rather than FIN: a cut link, not a polite close.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			up.Close()
		})
	}
	copyDir := func(dst, src net.Conn, done chan<- struct{}) {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.bytes.Add(int64(n))
				if limit > 0 && moved.Add(int64(n)) > limit {
					cut()
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					return
				}
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
		}
	}
	a, b := make(chan struct{}), make(chan struct{})
	go copyDir(up, c, a)
	go copyDir(c, up, b)
	<-a
	<-b
}

// Listen returns a listener on a free loopback port, closed at cleanup.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
