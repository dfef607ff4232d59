package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/caddy-mirror/mirror/compare"
)

// streamService is one version of grpc.testing.TestService's streaming
// methods, counting what it receives. StreamingInputCall answers the
// total size of the payloads it read (v2 answers one more);
// FullDuplexCall echoes each payload as it arrives, in both versions.
type streamService struct {
	testpb.UnimplementedTestServiceServer
	v2 bool
	// inputCalls and inputMessages count StreamingInputCall calls and
	// their messages; duplexCalls and duplexMessages, FullDuplexCall's.
	inputCalls, inputMessages, duplexCalls, duplexMessages atomic.Int64
}

func (s *streamService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	var size int32
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s.inputMessages.Add(1)
		size += int32(len(req.GetPayload().GetBody()))
	}
	if s.v2 {
		size++
	}
	s.inputCalls.Add(1)
	return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: size})
}

func (s *streamService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s.duplexMessages.Add(1)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
	s.duplexCalls.Add(1)
	return nil
}

// startStreamServer serves service in grpc-go over h2c on a loopback
// port, and returns its address.
func startStreamServer(t *testing.T, service *streamService) string {
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, service)
	return serveGRPC(t, srv)
}

// TestE2E_GRPCClientAndBidiStreaming: grpc-go clients make client- and
// bidi-streaming calls through Caddy, mirrored over h2c to a candidate
// that answers client-streaming calls differently. The client always gets
// the primary's answers, the bidi call's replies each before it sends its
// next message; each call's copy reaches the candidate whole, is counted
// mirrored, and is compared: the client-streaming calls mismatch, the
// bidi calls match.
func TestE2E_GRPCClientAndBidiStreaming(t *testing.T) {
	primary, candidate := &streamService{}, &streamService{v2: true}
	primaryAddr, candidateAddr := startStreamServer(t, primary), startStreamServer(t, candidate)
	rec := recordOutcomes(t)
	conn := loadGRPCFrontConn(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to http://%s {
			name grpc-stream-candidate
			compare
			transport http {
				versions h2c
			}
		}
	}
	# no request_buffers: these servers read the request to its end
	# before they finish, so reverse_proxy reads it all (and buffering
	# would hold an interactive bidi call until the client closes its side)
	reverse_proxy h2c://%s
}
`, candidateAddr, primaryAddr))
	client := testpb.NewTestServiceClient(conn)

	const calls, messages = 5, 3
	payload := func(call, msg int) *testpb.Payload {
		return &testpb.Payload{Body: bytes.Repeat([]byte{byte('a' + msg)}, 3000+call)}
	}
	mirroredOnce := func(method string) {
		t.Helper()
		for _, o := range rec.wait(t, 1) {
			if o.target != "grpc-stream-candidate" || o.outcome != mirrored {
				t.Fatalf("%s: copy %s %v, want mirrored", method, o.target, o.outcome)
			}
		}
	}
	for call := range calls {
		up, err := client.StreamingInputCall(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var sent int32
		for msg := range messages {
			p := payload(call, msg)
			sent += int32(len(p.Body))
			if err := up.Send(&testpb.StreamingInputCallRequest{Payload: p}); err != nil {
				t.Fatalf("StreamingInputCall send: %v", err)
			}
		}
		resp, err := up.CloseAndRecv()
		if err != nil || resp.AggregatedPayloadSize != sent {
			t.Fatalf("StreamingInputCall = %v, %v; want the primary's %d", resp, err, sent)
		}
		mirroredOnce("StreamingInputCall")

		duplex, err := client.FullDuplexCall(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for msg := range messages {
			p := payload(call, msg)
			if err := duplex.Send(&testpb.StreamingOutputCallRequest{Payload: p}); err != nil {
				t.Fatalf("FullDuplexCall send: %v", err)
			}
			// the reply comes before the client sends more: the
			// mirror holds nothing back while the call is open
			resp, err := duplex.Recv()
			if err != nil || !bytes.Equal(resp.GetPayload().GetBody(), p.Body) {
				t.Fatalf("FullDuplexCall message %d: %v; want the echo", msg, err)
			}
		}
		if err := duplex.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := duplex.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("FullDuplexCall end: %v, want EOF", err)
		}
		mirroredOnce("FullDuplexCall")
	}

	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"primary StreamingInputCall calls", primary.inputCalls.Load(), calls},
		{"candidate StreamingInputCall calls", candidate.inputCalls.Load(), calls},
		{"candidate StreamingInputCall messages", candidate.inputMessages.Load(), calls * messages},
		{"primary FullDuplexCall calls", primary.duplexCalls.Load(), calls},
		{"candidate FullDuplexCall calls", candidate.duplexCalls.Load(), calls},
		{"candidate FullDuplexCall messages", candidate.duplexMessages.Load(), calls * messages},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got := metricValue(t, "grpc-stream-candidate", "mirrored"); got != 2*calls {
		t.Errorf("mirror_requests_total mirrored = %v, want %d", got, 2*calls)
	}

	r, raw := getReport(t)
	if len(r.Targets) != 1 {
		t.Fatalf("report: %s", raw)
	}
	c := r.Targets[0]
	want := map[string]int64{"match": calls, "mismatch": calls}
	for name, n := range c.Counts {
		if n != want[name] {
			t.Errorf("count %s = %d, want %d\n%s", name, n, want[name], raw)
		}
	}
	if len(c.Fields) != 1 || c.Fields[0].Field != "grpc message" || c.Fields[0].Verdict != compare.VerdictRegression {
		t.Errorf("fields %+v, want only grpc message as a regression\n%s", c.Fields, raw)
	}
}
