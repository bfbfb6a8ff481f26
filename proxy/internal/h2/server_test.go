package h2

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestRequestsTLSAndCleartext(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			checkGoroutines(t)
			ts := newTestServer(t, echoHandler, useTLS)
			cl := ts.client()
			req, _ := http.NewRequest(http.MethodPost, ts.url("/a/b?c=d"), strings.NewReader("hello"))
			req.Header.Set("X-Echo", "v1")
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello" || resp.ProtoMajor != 2 {
				t.Fatalf("got %d %q %s", resp.StatusCode, body, resp.Proto)
			}
			if resp.Header.Get("X-Method") != "POST" || resp.Header.Get("X-Path") != "/a/b?c=d" || resp.Header.Get("X-Echoed") != "v1" ||
				resp.Header.Get("X-Authority") != ts.addr {
				t.Errorf("got head %v", resp.Header)
			}
		})
	}
}

func TestManyConcurrentStreamsAndLargeBodies(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, echoHandler, false)
	cl := ts.client()
	big := make([]byte, 2<<20) // beyond the windows of a stream and of the connection
	_, _ = rand.Read(big)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := big[:(i*113<<10)%len(big)]
			resp, err := cl.Post(ts.url(fmt.Sprintf("/%d", i)), "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("stream %d: %d bytes back of %d, %v", i, len(got), len(payload), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTrailersBothWays(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, echoHandler, true)
	cl := ts.client()
	req, _ := http.NewRequest(http.MethodPost, ts.url("/t"), io.MultiReader(strings.NewReader("abc")))
	req.Trailer = http.Header{"Grpc-Status": nil}
	req.Header.Set("Te", "trailers")
	go func() {}()
	req.Trailer.Set("Grpc-Status", "7")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "abc" || resp.Trailer.Get("Grpc-Status") != "7" {
		t.Errorf("got %q, trailers %v", body, resp.Trailer)
	}
}
