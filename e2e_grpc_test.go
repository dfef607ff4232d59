package mirror

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/caddy-mirror/mirror/compare"
)

// healthService is one version of a grpc.health.v1.Health service. v2
// fails Check for "flaky" with UNAVAILABLE and answers NOT_SERVING for
// "changed"; Watch sends three statuses and ends, in both versions.
type healthService struct {
	healthpb.UnimplementedHealthServer
	v2 bool
}

func (s healthService) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch {
	case s.v2 && req.Service == "flaky":
		return nil, status.Error(codes.Unavailable, "backend down")
	case s.v2 && req.Service == "changed":
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s healthService) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for _, st := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING,
	} {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
			return err
		}
	}
	return nil
}

// startHealthServer serves a healthService in grpc-go over h2c on a
// loopback port, and returns its address.
func startHealthServer(t *testing.T, v2 bool) string {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, healthService{v2: v2})
	return serveGRPC(t, srv)
}

// serveGRPC serves srv on a loopback port until the test ends, and
// returns its address.
func serveGRPC(t *testing.T, srv *grpc.Server) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// grpcGlobals lets the front accept HTTP/2 without TLS, as gRPC clients
// send it to a plain-text address.
const grpcGlobals = "servers {\n\tprotocols h1 h2 h2c\n}"

// loadGRPCFront loads sites with h2c allowed, empties the report, and
// returns a Health client of the front.
func loadGRPCFront(t *testing.T, sites string) healthpb.HealthClient {
	t.Helper()
	return healthpb.NewHealthClient(loadGRPCFrontConn(t, sites))
}

// loadGRPCFrontConn loads sites with h2c allowed, empties the report, and
// returns a plain-text gRPC connection to the front.
func loadGRPCFrontConn(t *testing.T, sites string) *grpc.ClientConn {
	t.Helper()
	tester := loadConfig(t, []byte(caddyfileGlobals(grpcGlobals)+sites), "text/caddyfile")
	t.Cleanup(func() { unloadMirrors(tester) })
	resetReport(t)
	conn, err := grpc.NewClient(strings.TrimPrefix(frontURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestE2E_CompareGRPC: grpc-go clients call a grpc-go service through
// Caddy, mirrored over h2c to a secondary and a candidate. Unary and
// server-streaming calls are compared; the candidate's UNAVAILABLE and
// its changed message are the only regressions, and the client always
// gets the primary's answer.
func TestE2E_CompareGRPC(t *testing.T) {
	primary, secondary, candidate := startHealthServer(t, false), startHealthServer(t, false), startHealthServer(t, true)
	rec := recordOutcomes(t)
	client := loadGRPCFront(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to http://%s {
			name grpc-secondary
			percent 0
			transport http {
				versions h2c
			}
		}
		to http://%s {
			name grpc-candidate
			compare {
				noise_from grpc-secondary
				headers Content-Type
			}
			transport http {
				versions h2c
			}
		}
	}
	# grpc-go answers a unary call before it reads the request's
	# END_STREAM; without request_buffers, reverse_proxy may stop reading
	# the request body there (and Caddy 2.11.9 then races in its own
	# bodyNopCloserIfNotRead), and the copy is skipped_body_incomplete
	reverse_proxy h2c://%s {
		request_buffers 64KiB
	}
}
`, secondary, candidate, primary))

	// Each call's copies are counted before the next call.
	want := map[string]int64{}
	var unavailable int64
	compared := func(result string) bool {
		t.Helper()
		got := false
		for _, o := range rec.wait(t, 2) {
			switch {
			case o.target == "grpc-candidate" && o.outcome == mirrored:
				want[result]++
				got = true
			case o.outcome != mirrored:
				t.Fatalf("%s: outcome %v, want mirrored", o.target, o.outcome)
			}
		}
		return got
	}
	const repeats = 5
	for range repeats {
		for _, service := range []string{"ok", "flaky", "changed"} {
			resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check(%s) = %v, %v; want the primary's SERVING", service, resp, err)
			}
			result := "mismatch"
			if service == "ok" {
				result = "match"
			}
			if compared(result) && service == "flaky" {
				unavailable++
			}
		}
		stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		var got []healthpb.HealthCheckResponse_ServingStatus
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			got = append(got, resp.Status)
		}
		if len(got) != 3 {
			t.Fatalf("Watch got %v, want the primary's three statuses", got)
		}
		compared("match")
	}
	if want["mismatch"] == 0 || want["match"] == 0 || unavailable == 0 {
		t.Fatalf("compared %v, %d UNAVAILABLE: too few copies sent to judge", want, unavailable)
	}

	r, raw := getReport(t)
	if len(r.Targets) != 1 {
		t.Fatalf("report: %s", raw)
	}
	c := r.Targets[0]
	for name, n := range c.Counts {
		if n != want[name] {
			t.Errorf("count %s = %d, want %d\n%s", name, n, want[name], raw)
		}
	}
	var regressions []string
	for _, f := range c.Fields {
		if f.Verdict == compare.VerdictRegression {
			regressions = append(regressions, f.Field)
		}
	}
	slices.Sort(regressions)
	if wantFields := []string{"grpc message", "grpc-status"}; !slices.Equal(regressions, wantFields) || len(c.Fields) != 2 {
		t.Errorf("fields %+v, want exactly %v as regressions\n%s", c.Fields, wantFields, raw)
	}
	if !slices.ContainsFunc(c.StatusPairs, func(p compare.StatusPairReport) bool {
		return p.Primary == 200 && p.PrimaryGRPC == "OK" && p.ShadowGRPC == "UNAVAILABLE" && p.Count == unavailable
	}) {
		t.Errorf("status pairs %+v, want OK → UNAVAILABLE %d times", c.StatusPairs, unavailable)
	}
	// each method is an endpoint: Check regresses, Watch does not
	endpoints := map[string]compare.EndpointReport{}
	for _, e := range c.Endpoints {
		endpoints[e.Endpoint] = e
	}
	check, watch := endpoints["POST /grpc.health.v1.Health/Check"], endpoints["POST /grpc.health.v1.Health/Watch"]
	if len(endpoints) != 2 || check.Verdict != compare.VerdictRegression || watch.Compared != repeats || watch.Mismatches != 0 {
		t.Errorf("endpoints %+v, want Check a regression and Watch %d exchanges without one\n%s", c.Endpoints, repeats, raw)
	}
}

// startTLSHealthServer serves a healthService in grpc-go over TLS (h2) on
// a loopback port, and returns its address and the path of a PEM file
// holding the self-signed certificate that a client must trust.
func startTLSHealthServer(t *testing.T, v2 bool) (addr, caFile string) {
	// httptest's certificate is self-signed, for 127.0.0.1
	certs := httptest.NewUnstartedServer(nil)
	certs.StartTLS()
	cert, leaf := certs.TLS.Certificates[0], certs.Certificate()
	certs.Close()
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	healthpb.RegisterHealthServer(srv, healthService{v2: v2})
	return serveGRPC(t, srv), caFile
}

// TestE2E_CompareGRPCOverTLS: unary calls through Caddy are mirrored over
// TLS (HTTP/2, verified against the shadow's CA) to a grpc-go candidate.
// Every copy arrives and is compared: the calls it answers alike match,
// the one it changed mismatches, and the client gets the primary's answer.
func TestE2E_CompareGRPCOverTLS(t *testing.T) {
	primary := startHealthServer(t, false)
	candidate, caFile := startTLSHealthServer(t, true)
	rec := recordOutcomes(t)
	client := loadGRPCFront(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to https://%s {
			name grpc-tls-candidate
			compare
			transport http {
				versions 2
				tls_trust_pool file %s
			}
		}
	}
	reverse_proxy h2c://%s {
		request_buffers 64KiB
	}
}
`, candidate, caFile, primary))

	const repeats = 5
	for range repeats {
		for _, service := range []string{"ok", "changed"} {
			resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check(%s) = %v, %v; want the primary's SERVING", service, resp, err)
			}
			if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
				t.Fatalf("Check(%s): copy %v, want mirrored over TLS", service, o.outcome)
			}
		}
	}

	r, raw := getReport(t)
	if len(r.Targets) != 1 {
		t.Fatalf("report: %s", raw)
	}
	want := map[string]int64{"match": repeats, "mismatch": repeats}
	for name, n := range r.Targets[0].Counts {
		if n != want[name] {
			t.Errorf("count %s = %d, want %d\n%s", name, n, want[name], raw)
		}
	}
	if f := r.Targets[0].Fields; len(f) != 1 || f[0].Field != "grpc message" || f[0].Verdict != compare.VerdictRegression {
		t.Errorf("fields %+v, want only grpc message as a regression\n%s", f, raw)
	}
}
