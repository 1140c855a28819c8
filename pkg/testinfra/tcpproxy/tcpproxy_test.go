package tcpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every line back and counts the connections it accepted.
type echoServer struct {
	l        net.Listener
	mu       sync.Mutex
	accepted int
	wg       sync.WaitGroup
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{l: l}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.accepted++
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); e.wg.Wait() })
	return e
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(context.Background(), "", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads the echo, with a deadline so a broken
// proxy fails the test instead of hanging it.
func roundTrip(c net.Conn, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestForwardCutRestore(t *testing.T) {
	echo := startEcho(t)
	p := startProxy(t, echo.l.Addr().String())

	c1 := dial(t, p.Addr())
	if got, err := roundTrip(c1, "hello"); err != nil || got != "hello\n" {
		t.Fatalf("echo through proxy = %q, %v", got, err)
	}

	if n := p.Cut(); n != 2 {
		t.Errorf("Cut() = %d, want 2 (both sides of the open connection)", n)
	}
	// The open connection is closed: reads end.
	_ = c1.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a cut connection succeeded")
	} else if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("cut connection still open (read timed out): %v", err)
	}
	// New connections are accepted and closed at once, never forwarded.
	echo.mu.Lock()
	before := echo.accepted
	echo.mu.Unlock()
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, "refused"); err == nil {
		t.Fatal("round trip through a cut proxy succeeded")
	} else if isTimeout(err) {
		t.Fatalf("cut proxy left a new connection open: %v", err)
	}
	echo.mu.Lock()
	after := echo.accepted
	echo.mu.Unlock()
	if after != before {
		t.Fatalf("a connection reached the target while cut (%d → %d)", before, after)
	}

	p.Restore()
	c3 := dial(t, p.Addr())
	if got, err := roundTrip(c3, "again"); err != nil || got != "again\n" {
		t.Fatalf("echo after Restore = %q, %v", got, err)
	}
}

func TestHalfClose(t *testing.T) {
	echo := startEcho(t)
	p := startProxy(t, echo.l.Addr().String())
	c := dial(t, p.Addr()).(*net.TCPConn)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "last words"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("after half-close read %q, %v; want the echo then EOF", got, err)
	}
}

func TestUnreachableTargetClosesClient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	l.Close()
	p := startProxy(t, target)
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "x"); err == nil || isTimeout(err) {
		t.Fatalf("round trip to a dead target: err = %v, want the connection closed", err)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	echo := startEcho(t)
	p, err := Start(context.Background(), "", echo.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read after Close: err = %v, want the connection closed", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Stall holds the bytes of open and new connections without closing them;
// Unstall delivers them.
func TestStallHoldsBytesUntilUnstall(t *testing.T) {
	echo := startEcho(t)
	p := startProxy(t, echo.l.Addr().String())
	c1 := dial(t, p.Addr())
	if got, err := roundTrip(c1, "before"); err != nil || got != "before\n" {
		t.Fatalf("echo through proxy = %q, %v", got, err)
	}

	if n := p.Stall(); n != 2 {
		t.Errorf("Stall() = %d, want 2 (both sides of the open connection)", n)
	}
	c2 := dial(t, p.Addr())
	r1, r2 := bufio.NewReader(c1), bufio.NewReader(c2)
	for _, c := range []net.Conn{c1, c2} {
		if _, err := io.WriteString(c, "held\n"); err != nil {
			t.Fatalf("write while stalled: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	}
	for i, r := range []*bufio.Reader{r1, r2} {
		if got, err := r.ReadString('\n'); !isTimeout(err) {
			t.Fatalf("connection %d while stalled: read %q, %v; want a timeout (bytes held, connection open)", i+1, got, err)
		}
	}

	p.Unstall()
	for i, c := range []net.Conn{c1, c2} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := []*bufio.Reader{r1, r2}[i].ReadString('\n'); err != nil || got != "held\n" {
			t.Fatalf("connection %d after Unstall: read %q, %v; want the held line", i+1, got, err)
		}
	}
}
