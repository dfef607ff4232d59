package mirror

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/caddyserver/caddy/v2"
)

// The loop marker. Every copy carries the header Caddy-Mirror, whose value
// is a marker of the Caddy that made it, so that a copy which comes back
// through a mirror of the same Caddy (a shadow whose own route mirrors
// back) is not copied again: that would be a loop. Only the Caddy that set
// a marker knows its value, so a client cannot hold the switch:
//   - a request that carries a marker of this process is a copy; it is
//     served, and counted skipped_loop by every target that selects it;
//   - a request that carries any other Caddy-Mirror value has the header
//     removed before anything else sees it, so that neither the primary
//     nor a shadow is told that a client's request is a copy, and the
//     request is mirrored as any other.
//
// The marker is random, made when the process starts, unless a handler's
// marker option sets one; Caddy instances that mirror to one another's
// shadows share one that way, from {env.*}, to recognise each other's
// copies.

// markerHeader is the header that carries the marker.
const markerHeader = "Caddy-Mirror"

// processMarker is the marker of every handler that sets none.
var processMarker = rand.Text()

// markers holds every marker that a loaded handler sets on its copies,
// and processMarker, with how many handlers use each.
var markers = caddy.NewUsagePool()

// markerValue is a marker in the markers pool.
type markerValue struct{}

// Destruct implements caddy.Destructor.
func (markerValue) Destruct() error { return nil }

func init() {
	_, _ = markers.LoadOrStore(processMarker, markerValue{})
}

// provisionMarker resolves h's marker, or chooses the process's, and adds
// it to the markers that this process recognises until Cleanup.
func (h *Handler) provisionMarker() error {
	h.marker = processMarker
	if h.Marker != "" {
		h.marker = caddy.NewReplacer().ReplaceKnown(h.Marker, "")
		switch {
		case h.marker == "":
			return fmt.Errorf("marker %q is empty once its placeholders are expanded", h.Marker)
		case strings.Contains(h.marker, "{"):
			return fmt.Errorf("marker %q: only placeholders known at load time, such as {env.*}, are allowed", h.Marker)
		case !httpguts.ValidHeaderFieldValue(h.marker):
			return fmt.Errorf("marker %q is not a valid header value", h.Marker)
		}
	}
	_, _ = markers.LoadOrStore(h.marker, markerValue{})
	h.markerHeld = true
	return nil
}

// releaseMarker gives back what provisionMarker took.
func (h *Handler) releaseMarker() {
	if h.markerHeld {
		_, _ = markers.Delete(h.marker)
		h.markerHeld = false
	}
}

// screenMarker looks at a request's marker, on the request path, before
// anything else: it reports whether the request is a copy that this
// process (or its fleet) made, and removes a marker that is not one of
// those. A request without the header costs one map lookup.
func screenMarker(r *http.Request) (isCopy bool) {
	v, ok := r.Header[markerHeader]
	if !ok {
		return false
	}
	if len(v) == 1 {
		if _, known := markers.References(v[0]); known {
			return true
		}
	}
	delete(r.Header, markerHeader)
	return false
}
