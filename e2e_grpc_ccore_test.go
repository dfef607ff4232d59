package mirror

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// debianPython is Debian's interpreter, which python3-grpcio installs into.
const debianPython = "/usr/bin/python3"

// startCCoreHealthServer runs testdata/ccore_health.py, a Health Check
// server on gRPC's C core, installing Debian's python3-grpcio first where
// it is missing and apt-get can; the test is skipped, saying why, where
// neither works. It returns the server's address.
func startCCoreHealthServer(t *testing.T) string {
	if exec.Command(debianPython, "-c", "import grpc").Run() != nil {
		install := "apt-get update && apt-get -o DPkg::Lock::Timeout=600 install -y python3-grpcio"
		if out, err := exec.Command("sh", "-c", install).CombinedOutput(); err != nil {
			t.Skipf("a C-core gRPC server needs Debian's python3-grpcio, which could not be installed (%v): %s", err, out)
		}
	}
	cmd := exec.Command(debianPython, "testdata/ccore_health.py")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("starting %s: %v", debianPython, err)
	}
	t.Cleanup(func() {
		stdin.Close() // the server stops at the end of its stdin
		_ = cmd.Wait()
	})
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the C-core server printed no port: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return "127.0.0.1:" + strings.TrimSpace(port)
}

// TestE2E_GRPCCopyToCCoreServer: a C-core gRPC server rejects every
// request without "te: trailers" (grpc-status 2, "Missing :te header").
// Copies keep it, so a C-core shadow answers them as the grpc-go primary
// does, and every exchange compares as a match.
func TestE2E_GRPCCopyToCCoreServer(t *testing.T) {
	shadow := startCCoreHealthServer(t)
	primary := startHealthServer(t, false)
	rec := recordOutcomes(t)
	client := loadGRPCFront(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to http://%s {
			name c-core
			transport http {
				versions h2c
			}
			compare
		}
	}
	reverse_proxy h2c://%s {
		request_buffers 64KiB
	}
}
`, shadow, primary))
	const calls = 10
	for range calls {
		resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check = %v, %v; want the primary's SERVING", resp, err)
		}
	}
	if got := counts(rec.wait(t, calls)); got["mirrored"] != calls {
		t.Fatalf("outcomes %v, want %d mirrored", got, calls)
	}
	r, raw := getReport(t)
	if len(r.Targets) != 1 || r.Targets[0].Counts["match"] != calls {
		t.Errorf("want %d matches: the C-core shadow answered every copy as the primary did\n%s", calls, raw)
	}
}
