package notify

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The example request in docs/notifications.md must verify with the demo
// merchant's webhook secret, so merchants can test their code against it.
func TestDocsExampleVerifies(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```http\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("no http example in docs/notifications.md")
	}
	head, body, ok := strings.Cut(string(m[1]), "\n\n")
	if !ok {
		t.Fatal("example has no body")
	}
	body = strings.TrimSuffix(body, "\n")
	hm := regexp.MustCompile(`(?m)^X-Paygate-Signature: (.*)$`).FindStringSubmatch(head)
	if hm == nil {
		t.Fatal("example has no signature header")
	}
	h, err := parseHeader(hm[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify([]byte("sandbox-demo-webhook-secret-0123456789"), hm[1], []byte(body), time.Unix(h.t, 0), 0); err != nil {
		t.Fatalf("docs example: %v", err)
	}
}
