package compare

import (
	"fmt"
	"testing"
)

// TestMetricLabelsStatusPairBound checks that a target's status pairs
// keep their codes up to the bound, and share one overflow pair after it.
func TestMetricLabelsStatusPairBound(t *testing.T) {
	var l metricLabels
	for shadow := 100; shadow < 100+2*maxStatusPairLabels; shadow++ {
		p, s := l.statusPair(200, shadow)
		inBound := shadow < 100+maxStatusPairLabels
		if want := fmt.Sprint(shadow); inBound && (p != "200" || s != want) {
			t.Errorf("pair 200→%d: labels %s→%s, want its codes", shadow, p, s)
		} else if !inBound && (p != otherStatus || s != otherStatus) {
			t.Errorf("pair 200→%d past the bound: labels %s→%s, want %s→%s", shadow, p, s, otherStatus, otherStatus)
		}
	}
	if p, s := l.statusPair(200, 100); p != "200" || s != "100" {
		t.Errorf("a pair within the bound, seen again: %s→%s, want 200→100", p, s)
	}
}
