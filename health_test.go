package mirror

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealthBreaker(t *testing.T) {
	clock := fakeClock(t)
	var transitions []bool
	h := newHealth(now, 3, 10*time.Second, func(healthy bool) { transitions = append(transitions, healthy) })
	send := func() (ok, probe bool) { return h.allow() }

	for i := range 2 {
		if ok, _ := send(); !ok {
			t.Fatalf("copy %d refused while healthy", i)
		}
		h.record(false, false)
	}
	h.record(true, false) // a success resets the count
	for range 3 {
		h.record(false, false)
	}
	if ok, _ := send(); ok {
		t.Fatal("a copy was allowed after 3 failures in a row")
	}

	clock.Add(int64(10 * time.Second))
	ok, probe := send()
	if !ok || !probe {
		t.Fatalf("after fail_duration: allowed %v, probe %v; want a probe", ok, probe)
	}
	if ok, _ := send(); ok {
		t.Fatal("a second copy was allowed while the probe is out")
	}
	h.record(false, true) // the probe failed: wait again
	if ok, _ := send(); ok {
		t.Fatal("a copy was allowed right after a failed probe")
	}

	clock.Add(int64(10 * time.Second))
	if _, probe := send(); !probe {
		t.Fatal("no probe after the second fail_duration")
	}
	h.cancelProbe() // it was not sent after all: another may go
	if _, probe := send(); !probe {
		t.Fatal("no probe after one was given back")
	}
	h.record(true, true)
	if ok, probe := send(); !ok || probe {
		t.Fatalf("after a successful probe: allowed %v, probe %v; want healthy", ok, probe)
	}
	if fmt.Sprint(transitions) != "[false true]" {
		t.Errorf("transitions %v, want unhealthy then healthy", transitions)
	}

	never := newHealth(now, 0, time.Second, nil)
	for range 100 {
		never.record(false, false)
	}
	if ok, _ := never.allow(); !ok {
		t.Error("max_fails -1: a target was marked unhealthy")
	}
}

// TestUnhealthyTargetCostsNothing: a shadow that resets every connection
// gets max_fails copies; after that, copies are dropped without a
// connection, until a probe after fail_duration finds it answering again.
func TestUnhealthyTargetCostsNothing(t *testing.T) {
	clock := fakeClock(t)
	var accepted atomic.Int64
	var answering atomic.Bool
	addr, _ := rawShadow(t, func(conn net.Conn) {
		accepted.Add(1)
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		if answering.Load() {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		_ = conn.(*net.TCPConn).SetLinger(0) // reset
	})
	rec := recordOutcomes(t)
	h := provisionHandler(t, `{"targets":[{"upstream":"http://`+addr+`","max_fails":3,"fail_duration":"30s"}]}`)
	front := serveThrough(t, h, checksumPrimary)
	send := func() outcome {
		t.Helper()
		post(t, front.URL)
		return rec.wait(t, 1)[0].outcome
	}

	var got []string
	for range 6 {
		got = append(got, send().String())
	}
	if want := "failed failed failed dropped_unhealthy dropped_unhealthy dropped_unhealthy"; strings.Join(got, " ") != want {
		t.Errorf("outcomes %v, want %s", got, want)
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("the shadow accepted %d connections, want 3: an unhealthy target must not be dialled", n)
	}

	answering.Store(true)
	clock.Add(int64(30 * time.Second))
	if o := send(); o != mirrored {
		t.Errorf("the probe after fail_duration: %v, want mirrored", o)
	}
	if o := send(); o != mirrored {
		t.Errorf("after a successful probe: %v, want mirrored", o)
	}
}
