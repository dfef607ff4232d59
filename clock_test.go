package mirror

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock replaces the package's clock for the rest of the test with one
// that only moves when the test moves it.
func fakeClock(t *testing.T) *atomic.Int64 {
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	setClock(func() time.Time { return time.Unix(0, clock.Load()) })
	t.Cleanup(func() { setClock(time.Now) })
	return &clock
}
