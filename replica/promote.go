package replica

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Promote asks a region's promote hook to make its database the writer:
// one POST to url, done when it answers 2xx within timeout. It is never
// retried here; the caller records that it was called.
func Promote(ctx context.Context, c *http.Client, url string, timeout time.Duration, body string) error {
	if c == nil {
		c = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req) //nolint:gosec // G107: the URL is the operator's configured promote hook
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("promote: status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
