package adapters

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

type obs struct{ calls []string }

func (o *obs) ObserveCall(channel, op string, status int, d time.Duration, err error) {
	o.calls = append(o.calls, channel+" "+op)
}

func newTestClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
}

func TestCallerClassifiesTransportFailures(t *testing.T) {
	// Refused: nothing listens.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	o := &obs{}
	c := &Caller{Channel: "ch", Client: newTestClient(), Observer: o}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/x", strings.NewReader("{}"))
	_, err := c.Do(context.Background(), "create", req)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != KindUnavailable || !ce.NotCreated() {
		t.Fatalf("connection refused: %v", err)
	}

	// Sent, then no answer before the deadline: ambiguous.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequest(http.MethodPost, slow.URL, strings.NewReader("{}"))
	_, err = c.Do(ctx, "create", req)
	if !errors.As(err, &ce) || ce.Kind != KindAmbiguous || ce.Code != "timeout" {
		t.Fatalf("timeout after sending: %v", err)
	}
	if len(o.calls) != 2 {
		t.Fatalf("observer saw %d calls, want 2", len(o.calls))
	}
}

// A replayable request survives the channel closing a kept-alive
// connection; the marker header never reaches the wire.
func TestMarkReplayableSurvivesClosedKeepAlive(t *testing.T) {
	var sawHeader bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Idempotency-Key"]; ok {
			sawHeader = true
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := &Caller{Channel: "ch", Client: newTestClient()}
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		MarkReplayable(req)
		resp, err := c.Do(context.Background(), "query", req)
		if err != nil || string(resp.Body) != "ok" {
			t.Fatalf("call %d after the server dropped its connections: %v", i, err)
		}
		srv.CloseClientConnections()
	}
	if sawHeader {
		t.Fatal("the Idempotency-Key marker was sent on the wire")
	}
}

// The connect phase sent nothing: a dial that times out and a TLS handshake
// that times out are KindUnavailable (fail over at once), unlike a timeout
// after the request was written.
func TestCallerConnectPhaseTimeoutsAreNotSent(t *testing.T) {
	// A dial that never completes: the dialer gives up with a timeout (as
	// net.Dialer does after its Timeout; no packet leaves the machine).
	blackhole := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			time.Sleep(20 * time.Millisecond)
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrDeadlineExceeded}
		},
	}}
	c := &Caller{Channel: "ch", Client: blackhole}
	req, _ := http.NewRequest(http.MethodPost, "http://channel.invalid/x", strings.NewReader("{}"))
	_, err := c.Do(context.Background(), "create", req)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != KindUnavailable || ce.Code != "connect_failed" {
		t.Fatalf("dial timeout: %v, want unavailable connect_failed", err)
	}

	// TCP accepted, TLS never answered: the handshake times out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }()
		}
	}()
	silent := &http.Client{Transport: &http.Transport{TLSHandshakeTimeout: 50 * time.Millisecond}}
	c = &Caller{Channel: "ch", Client: silent}
	req, _ = http.NewRequest(http.MethodPost, "https://"+ln.Addr().String()+"/x", strings.NewReader("{}"))
	_, err = c.Do(context.Background(), "create", req)
	if !errors.As(err, &ce) || ce.Kind != KindUnavailable || !ce.NotCreated() {
		t.Fatalf("TLS handshake timeout: %v, want unavailable", err)
	}

	// The same when the caller's deadline ends the dial.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	hang := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() },
	}}
	c = &Caller{Channel: "ch", Client: hang}
	req, _ = http.NewRequest(http.MethodPost, "http://channel.invalid/x", strings.NewReader("{}"))
	_, err = c.Do(ctx, "create", req)
	if !errors.As(err, &ce) || ce.Kind != KindUnavailable {
		t.Fatalf("deadline during the dial: %v, want unavailable", err)
	}
}

func TestDefaultClientConnectTimeouts(t *testing.T) {
	tr := defaultClient.Transport.(*http.Transport)
	if tr.TLSHandshakeTimeout != ConnectTimeout || ConnectTimeout > time.Second {
		t.Fatalf("TLS handshake timeout %v, connect timeout %v: want ≤ 1s", tr.TLSHandshakeTimeout, ConnectTimeout)
	}
}
