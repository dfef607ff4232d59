package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLoadReportRoundTrip: a load sent as a report comes back with its
// counts and latencies.
func TestLoadReportRoundTrip(t *testing.T) {
	l := load{sent: 10, completed: 9, errors: 1, cancelled: 1, firstError: "boom", elapsed: time.Second, latency: newLatencyHistogram()}
	for _, us := range []int64{100, 200, 300, 5000} {
		_ = l.latency.RecordValue(us)
	}
	r, err := reportOf(l, schedHistogram{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back loadReport
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.load()
	if err != nil {
		t.Fatal(err)
	}
	if got.sent != 10 || got.completed != 9 || got.errors != 1 || got.cancelled != 1 || got.firstError != "boom" || got.elapsed != time.Second ||
		got.latency.TotalCount() != 4 || got.latency.ValueAtQuantile(99) != l.latency.ValueAtQuantile(99) {
		t.Fatalf("%+v, %d latencies", got, got.latency.TotalCount())
	}
}

// TestServeLoadgen: the load generator's side warms up, says it is
// ready, waits for the start, and reports an open loop's load.
func TestServeLoadgen(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(primaryBody) }))
	defer front.Close()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveLoadgen(inR, outW); outW.Close() }()
	spec := loadSpec{URL: front.URL, Method: http.MethodGet, Want: primaryBody, Conns: 1, Open: true, Rate: 200,
		Duration: 200 * time.Millisecond, Grace: time.Second, Warmup: 20 * time.Millisecond}
	line, _ := json.Marshal(spec)
	go func() { _, _ = inW.Write(append(line, '\n')) }()
	lines := bufio.NewScanner(outR)
	var msg loadgenMessage
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &msg) != nil || !msg.Ready {
		t.Fatalf("no ready line: %q", lines.Text())
	}
	go func() { _, _ = inW.Write([]byte("go\n")) }()
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &msg) != nil || msg.Report == nil {
		t.Fatalf("no report: %q", lines.Text())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l, err := msg.Report.load()
	if err != nil || l.sent != 40 || l.completed != 40 || l.errors != 0 || l.latency.TotalCount() != 40 {
		t.Fatalf("%+v %v; want 40 sent and answered", l, err)
	}
}
