package compare

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/code"
)

// gRPC responses travel as HTTP/2 responses with status 200 whose outcome
// is in the grpc-status and grpc-message trailers (or, for an error with
// no message, in the headers: a "trailers-only" response), and whose body
// is a series of length-prefixed messages. The comparison treats
// grpc-status like the HTTP status, and compares the messages one by one
// as bytes: decoding protobuf would need the service's descriptors.

// isGRPC reports whether a Content-Type is gRPC's: application/grpc, or
// application/grpc+proto, +json and the like (not gRPC-Web).
func isGRPC(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	return mediaType == "application/grpc" || strings.HasPrefix(mediaType, "application/grpc+")
}

// grpcField returns a gRPC response field from the trailers, or from the
// headers of a trailers-only response.
func grpcField(d *decodedResponse, name string) (string, bool) {
	if v, ok := d.trailer[name]; ok && len(v) > 0 {
		return v[0], true
	}
	if v, ok := d.header[name]; ok && len(v) > 0 {
		return v[0], true
	}
	return "", false
}

// grpcStatus returns a response's grpc-status by its name in
// google.rpc.Code ("OK", "UNAVAILABLE"), or "(absent)".
func grpcStatus(d *decodedResponse) string {
	v, ok := grpcField(d, "Grpc-Status")
	if !ok {
		return absent
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		if name, ok := code.Code_name[int32(n)]; ok {
			return name
		}
	}
	return v
}

// diffGRPCStatus compares grpc-status, and when it is the same,
// grpc-message. It reports whether the statuses differ, in which case
// nothing else is compared, as with HTTP statuses.
func diffGRPCStatus(a, b *decodedResponse, diffs []difference) ([]difference, bool) {
	if as, bs := grpcStatus(a), grpcStatus(b); as != bs {
		return append(diffs, difference{Field: "grpc-status", Primary: as, Shadow: bs}), true
	}
	am, _ := grpcField(a, "Grpc-Message")
	bm, _ := grpcField(b, "Grpc-Message")
	if am != bm {
		diffs = append(diffs, difference{Field: "grpc-message", Primary: cut(am), Shadow: cut(bm)})
	}
	return diffs, false
}

// grpcMessages splits a gRPC body into its length-prefixed messages, each
// with its 5-byte prefix (the compressed flag and the length), and returns
// what is left after the last whole message.
func grpcMessages(body []byte) (messages [][]byte, rest []byte) {
	for len(body) >= 5 {
		n := uint64(binary.BigEndian.Uint32(body[1:5]))
		if uint64(len(body)-5) < n {
			break
		}
		messages = append(messages, body[:5+n])
		body = body[5+n:]
	}
	return messages, body
}

// diffGRPCMessages compares two gRPC bodies message by message, as bytes.
// A differing message is the field "grpc message", with its index as the
// pointer and its bytes in hex.
func diffGRPCMessages(a, b []byte, diffs []difference) []difference {
	am, arest := grpcMessages(a)
	bm, brest := grpcMessages(b)
	for i := range max(len(am), len(bm)) {
		if len(diffs) >= maxDifferences {
			return diffs
		}
		av, bv := absent, absent
		if i < len(am) {
			av = cut(hex.EncodeToString(am[i]))
		}
		if i < len(bm) {
			bv = cut(hex.EncodeToString(bm[i]))
		}
		if i < len(am) && i < len(bm) && bytes.Equal(am[i], bm[i]) {
			continue
		}
		diffs = append(diffs, difference{Field: "grpc message", Pointer: "/" + strconv.Itoa(i), Primary: av, Shadow: bv})
	}
	if !bytes.Equal(arest, brest) {
		diffs = append(diffs, difference{Field: "body", Primary: cut(hex.EncodeToString(arest)), Shadow: cut(hex.EncodeToString(brest))})
	}
	return diffs
}
