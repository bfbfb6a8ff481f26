package node

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReloadUnderLoad reloads the config 20 times while DNS queries and
// proxied GETs run: not one may fail, and a broken config in between is
// refused while the old one keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	tn := startNode(t, "")
	base := mustRead(t, tn.path)
	dnsAddr := tn.Addr("dns/0").String()
	httpURL := "http://" + tn.Addr("http/0").String() + "/"

	var queries, gets, failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(2)
		go func() { // DNS
			defer wg.Done()
			c := &dns.Client{Timeout: time.Second}
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion("api.example.test.", dns.TypeA)
				r, _, err := c.Exchange(m, dnsAddr)
				switch {
				case err != nil:
					fail(err)
				case r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0:
					fail(fmt.Errorf("dns answer: %s, %d records", dns.RcodeToString[r.Rcode], len(r.Answer)))
				}
				queries.Add(1)
			}
		}()
		go func() { // proxied GETs
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second}
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, httpURL, nil)
				req.Host = "web.example.test"
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("proxied GET: %d", resp.StatusCode))
				}
				gets.Add(1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		text := strings.Replace(base, "ttl: 30s", fmt.Sprintf("ttl: %ds", 20+i), 1)
		if i == 10 {
			tn.write(t, text+"\nnot_a_key: true\n")
			if err := tn.Reload(Actor{Token: "test"}); err == nil {
				t.Error("a broken config was accepted")
			}
		}
		tn.write(t, text)
		if err := tn.Reload(Actor{Token: "test"}); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d failures across 20 reloads (first: %v)", f, firstErr.Load())
	}
	if queries.Load() < 20 || gets.Load() < 20 {
		t.Fatalf("too little load to judge: %d queries, %d requests", queries.Load(), gets.Load())
	}
	if g := tn.View().Generation; g != 21 {
		t.Fatalf("generation: got %d, want 21", g)
	}
	t.Logf("%d queries and %d proxied requests across 20 reloads, none failed", queries.Load(), gets.Load())
}
