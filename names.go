package mirror

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// What a target's name means. It is the target label of the metrics and
// the logs, and the name its comparison report is kept under (by default,
// the upstream as written). A name may be used by targets of several
// mirror handlers of a config (several sites or routes): their copies go
// to the same shadow and are counted together in the same series, as
// reverse_proxy counts an upstream's requests together. But a report
// compares one primary's responses with its shadow's: two comparing
// targets of one config under the same name would mix the exchanges of
// different primaries in one report, judged by whichever target was
// loaded last. Such a config is refused.

// comparingNames holds, for each config (known by its metrics registry,
// which Caddy makes per config) and comparing target name, the handler
// that compares under it.
var comparingNames = struct {
	sync.Mutex
	owners map[comparingName]*Handler
}{owners: map[comparingName]*Handler{}}

// comparingName is a comparing target's name in one config.
type comparingName struct {
	config prometheus.Registerer
	name   string
}

// claimComparingNames records h's comparing targets under their names in
// the config of reg, failing when another handler of that config already
// compares under one of them.
func (h *Handler) claimComparingNames(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	comparingNames.Lock()
	defer comparingNames.Unlock()
	for i, t := range h.Targets {
		if t.Compare == nil {
			continue
		}
		key := comparingName{reg, t.label}
		if owner, ok := comparingNames.owners[key]; ok && owner != h {
			return fmt.Errorf("targets[%d]: name %q is already used by a comparing target of another mirror handler in this config; "+
				"each report compares one primary's responses, so give the targets different names", i, t.label)
		}
		comparingNames.owners[key] = h
		h.claimed = append(h.claimed, key)
	}
	return nil
}

// releaseComparingNames gives back what claimComparingNames took.
func (h *Handler) releaseComparingNames() {
	comparingNames.Lock()
	defer comparingNames.Unlock()
	for _, key := range h.claimed {
		if comparingNames.owners[key] == h {
			delete(comparingNames.owners, key)
		}
	}
	h.claimed = nil
}
