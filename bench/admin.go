package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// adminSocketName is the admin endpoint's socket in a Caddy's own
// temporary folder.
const adminSocketName = "admin.sock"

// maxUnixSocketPath is the longest path a unix socket can have on Linux
// (sun_path holds 108 bytes, the last one a NUL).
const maxUnixSocketPath = 107

// adminTimeout bounds one call to the admin API, so that a Caddy that
// stops answering fails the run instead of hanging it.
const adminTimeout = 30 * time.Second

// adminAPI is the admin endpoint of a Caddy under test. It listens on a
// unix socket in the Caddy's temporary folder, which Caddy binds itself,
// so no other process can answer in its place (as one did on a loopback
// port that was free when it was chosen and taken before Caddy bound it);
// the admin API skips its Host and Origin checks on unix sockets.
type adminAPI struct {
	socket string
	client *http.Client
}

// newAdminAPI returns a client of the admin endpoint Caddy will listen on
// in dir.
func newAdminAPI(dir string) (*adminAPI, error) {
	socket := filepath.Join(dir, adminSocketName)
	if len(socket) > maxUnixSocketPath {
		return nil, fmt.Errorf("the admin socket's path %s is longer than a unix socket's %d bytes: set TMPDIR to a shorter folder", socket, maxUnixSocketPath)
	}
	dialer := &net.Dialer{Timeout: adminTimeout}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &adminAPI{socket: socket, client: &http.Client{Transport: transport, Timeout: adminTimeout}}, nil
}

// listenAddress is the socket as Caddy's admin "listen" setting takes it.
func (a *adminAPI) listenAddress() string {
	return "unix/" + a.socket
}

// where names a path of the API in error messages, as curl would take it.
func (a *adminAPI) where(path string) string {
	return fmt.Sprintf("http://localhost%s (--unix-socket %s)", path, a.socket)
}

// get fetches a path of the API and checks its answer as fetch does.
func (a *adminAPI) get(path, wantType string) ([]byte, error) {
	// the host is not dialled (the transport dials the socket) nor checked
	req, err := http.NewRequest(http.MethodGet, "http://localhost"+path, nil)
	if err != nil {
		return nil, err
	}
	return fetch(a.client, req, a.where(path), wantType)
}

// close drops the idle connections to the socket.
func (a *adminAPI) close() {
	a.client.CloseIdleConnections()
}

// load replaces Caddy's config with cfg through POST /load, and returns
// once Caddy runs it. It sends Cache-Control: must-revalidate, which makes
// Caddy load a config even when it is the one already running.
func (a *adminAPI) load(cfg []byte) error {
	req, err := http.NewRequest(http.MethodPost, "http://localhost/load", bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate")
	_, err = fetch(a.client, req, a.where("/load"), "")
	return err
}
