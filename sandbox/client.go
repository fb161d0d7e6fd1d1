package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Client drives simulators running in another process (`paygate sim`)
// through their control API; it offers the same calls as *Server.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the control API at addr (host:port).
func NewClient(addr string) *Client {
	return &Client{base: "http://" + addr, http: &http.Client{Timeout: 10 * time.Second}}
}

func (c *Client) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox control: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var r struct {
			Result string `json:"result"`
		}
		_ = json.Unmarshal(b, &r) // an answer that is not JSON leaves Result empty
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNoOrder, r.Result)
		case http.StatusConflict:
			return fmt.Errorf("%w: %s", ErrOrderState, r.Result)
		}
		return fmt.Errorf("sandbox control: %d %s", resp.StatusCode, r.Result)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Pay makes the payer pay an order at a channel.
func (c *Client) Pay(channelID, orderNo string) error {
	return c.do(http.MethodPost, "/channels/"+url.PathEscape(channelID)+"/orders/"+url.PathEscape(orderNo)+"/pay", nil, nil)
}

// Fail makes an order's payment fail at a channel.
func (c *Client) Fail(channelID, orderNo string) error {
	return c.do(http.MethodPost, "/channels/"+url.PathEscape(channelID)+"/orders/"+url.PathEscape(orderNo)+"/fail", nil, nil)
}

// SetFaults replaces a channel's faults.
func (c *Client) SetFaults(f Faults) error { return c.do(http.MethodPost, "/faults", f, nil) }

// Faults lists the faults in force; on error it returns none.
func (c *Client) Faults() []Faults {
	var out []Faults
	if err := c.do(http.MethodGet, "/faults", nil, &out); err != nil {
		return nil
	}
	return out
}
