package adapters

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
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
