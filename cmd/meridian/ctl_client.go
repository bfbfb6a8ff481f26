package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meridian-edge/meridian/node"
)

// maxCtlResponse bounds what ctl reads of one answer.
const maxCtlResponse = 64 << 20

// ctlClient talks to one node's admin API.
type ctlClient struct {
	base  string
	token string
	hc    *http.Client
}

func newCtlClient(admin, token string) (*ctlClient, error) {
	base, err := adminBase(admin)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &ctlClient{base: base, token: token, hc: &http.Client{Transport: tr, Timeout: waitTimeout}}, nil
}

func (c *ctlClient) close() { c.hc.CloseIdleConnections() }

// ctlAPIError is an answer other than 2xx.
type ctlAPIError struct {
	status int
	msg    string // the API's "error" message
}

func (e *ctlAPIError) Error() string {
	switch e.status {
	case http.StatusUnauthorized:
		return "unauthorized: check --token or MERIDIAN_TOKEN (" + e.msg + ")"
	case http.StatusForbidden:
		return "forbidden: the token is read-only"
	case http.StatusNotFound:
		return "not found: " + e.msg
	case http.StatusConflict:
		return "conflict: " + e.msg
	case http.StatusPreconditionFailed:
		return "precondition failed: " + e.msg
	case http.StatusBadRequest:
		return "refused: " + e.msg
	}
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.msg)
}

// do sends a request and returns the body of a 2xx answer.
func (c *ctlClient) do(method, path string, query url.Values, body any) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd) //nolint:gosec // G704: the operator's --admin URL
	if err != nil {
		return nil, fmt.Errorf("preparing request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req) //nolint:gosec // G704: the operator's --admin URL
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach meridian admin API at %s: %w", c.base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCtlResponse))
	if err != nil {
		return nil, fmt.Errorf("reading answer from %s: %w", c.base, err)
	}
	if resp.Header.Get(node.AdminHeader) == "" {
		return nil, fmt.Errorf("%s answered %q, but not as a meridian admin API: is --admin the node's listen.admin address?", c.base, resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &ctlAPIError{status: resp.StatusCode, msg: errorMessage(resp.Status, data)}
	}
	return data, nil
}

// errorMessage is the API's {"error": ...} message, or a short excerpt of
// whatever else came back.
func errorMessage(status string, data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return status
	}
	return s
}

// call sends a request and either writes the raw JSON answer (-o json) or
// decodes it into v for a table.
func (c *ctlClient) call(out io.Writer, f *ctlFlags, method, path string, query url.Values, body, v any) (printed bool, err error) {
	data, err := c.do(method, path, query, body)
	if err != nil {
		return false, err
	}
	if f.output == "json" {
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		_, err := out.Write(data)
		return true, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decoding answer from %s: %w", c.base, err)
	}
	return false, nil
}
