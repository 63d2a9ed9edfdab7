package localnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rainp2p/rainp2p/internal/admin"
	"github.com/rainp2p/rainp2p/p2p"
)

// apiError is a non-2xx answer from a node's admin API.
type apiError struct {
	Code int
	Msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Msg) }

// client speaks to the nodes' admin APIs.
type client struct{ http *http.Client }

func newClient() *client { return newClientDialer(nil) }

// newClientDialer is a client whose connections dial makes (nil: the
// default dialer).
func newClientDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *client {
	return &client{http: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, DialContext: dial},
	}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

func (c *client) do(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(b))
		}
		return &apiError{Code: resp.StatusCode, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, url, err)
	}
	return nil
}

func (c *client) status(ctx context.Context, base string) (p2p.Status, error) {
	var s p2p.Status
	return s, c.do(ctx, http.MethodGet, base+"/v1/status", nil, &s)
}

func (c *client) messages(ctx context.Context, base string) ([]admin.Message, error) {
	var ms []admin.Message
	return ms, c.do(ctx, http.MethodGet, base+"/v1/messages?stream=0", nil, &ms)
}

// sent is the admin API's answer to a broadcast or send.
type sent struct {
	Nonce      string `json:"nonce"`
	SentUnixNS int64  `json:"sent_unix_ns"`
}

type sendBody struct {
	To      string `json:"to,omitempty"`
	Payload string `json:"payload"`
}

func (c *client) broadcast(ctx context.Context, base, payload string) (sent, error) {
	var s sent
	return s, c.do(ctx, http.MethodPost, base+"/v1/broadcast", sendBody{Payload: payload}, &s)
}

func (c *client) send(ctx context.Context, base, to, payload string) (sent, error) {
	var s sent
	return s, c.do(ctx, http.MethodPost, base+"/v1/send", sendBody{To: to, Payload: payload}, &s)
}

// retryable reports whether a failed send may succeed later: the peer is
// not known yet (404), not reachable yet (503), or the node timed out.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code == http.StatusNotFound || ae.Code == http.StatusServiceUnavailable || ae.Code == http.StatusGatewayTimeout
	}
	return false
}
