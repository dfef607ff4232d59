package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFrontAddressFromCaddysLog: the front's address comes from Caddy's
// "port 0 listener" line, however the output is split into writes, and
// only errors and lines that are not Caddy's log are shown.
func TestFrontAddressFromCaddysLog(t *testing.T) {
	read, front := frontAddressReader()
	w := &outputWatcher{read: read, show: showCaddyLine}
	log := `{"level":"info","ts":1,"logger":"http","msg":"server running","name":"front"}
{"level":"warn","ts":1,"logger":"http","msg":"HTTP/2 skipped because it requires TLS"}
{"level":"info","ts":1,"logger":"http","msg":"port 0 listener","input_address":"127.0.0.1:0","actual_address":"127.0.0.1:43073"}
`
	for i := 0; i < len(log); i += 7 {
		_, _ = w.Write([]byte(log[i:min(i+7, len(log))]))
	}
	select {
	case addr := <-front:
		if addr != "127.0.0.1:43073" {
			t.Fatalf("front %s, want 127.0.0.1:43073", addr)
		}
	case <-time.After(time.Second):
		t.Fatal("no front address read")
	}
	for line, want := range map[string]bool{
		`{"level":"info","msg":"port 0 listener"}`:                     false,
		`{"level":"warn","msg":"HTTP/2 skipped"}`:                      false,
		`{"level":"error","logger":"http.log.error","msg":"dial tcp"}`: true,
		`2026/12/02 09:00:00 [INFO] not a JSON line`:                   true,
	} {
		if got := showCaddyLine([]byte(line)); got != want {
			t.Errorf("showCaddyLine(%s) = %v, want %v", line, got, want)
		}
	}
}

// TestStartCaddyThatExits: a Caddy that exits before it reports its front
// fails the start at once, with its last output.
func TestStartCaddyThatExits(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "caddy")
	script := "#!/bin/sh\necho 'Error: loading initial config: listen unix: address already in use' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := startCaddy(bin, "", "127.0.0.1:1", "127.0.0.1:2", nil)
	if err == nil {
		t.Fatal("started")
	}
	for _, want := range []string{"exited", "port 0 listener", "loading initial config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if time.Since(start) > caddyStartTimeout/2 {
		t.Errorf("took %s to notice the exit", time.Since(start))
	}
}
