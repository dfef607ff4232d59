package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// serveUnix serves h on the admin socket in dir.
func serveUnix(t *testing.T, dir string, h http.HandlerFunc) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, adminSocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// TestScrapeSaysWhatCameBack: a scrape answered with something other
// than Prometheus's text format fails with the status, the Content-Type,
// the start of the body and where it asked.
func TestScrapeSaysWhatCameBack(t *testing.T) {
	for _, tc := range []struct {
		name, contentType string
		status            int
		body              string
		want              []string
	}{
		{"not found", "text/plain", http.StatusNotFound, "404 page not found", []string{"404", "404 page not found"}},
		{"another server", "text/html", http.StatusOK, "from someone else", []string{"text/html", "from someone else"}},
		{"not metrics", "text/plain", http.StatusOK, "from someone else", []string{"from someone else", "text format parsing error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			serveUnix(t, dir, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			admin, err := newAdminAPI(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.close()
			_, err = scrape(admin)
			if err == nil {
				t.Fatal("scrape succeeded")
			}
			for _, want := range append(tc.want, admin.socket, "/metrics") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestScrapeReadsMetrics: a scrape of Prometheus's text format over the
// unix socket reads its values.
func TestScrapeReadsMetrics(t *testing.T) {
	dir := t.TempDir()
	serveUnix(t, dir, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte("# TYPE go_goroutines gauge\ngo_goroutines 42\n"))
	})
	admin, err := newAdminAPI(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.close()
	m, err := scrape(admin)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.value("go_goroutines", nil); got != 42 {
		t.Fatalf("go_goroutines %v, want 42", got)
	}
}
