package mirror

import (
	"sync/atomic"
	"time"
)

// The clock. now is where the mirror reads the time: the sampler's rate
// cap, each shadow's circuit breaker and concurrency limit are made with
// it (see shadowState), and the copies' round trips are timed on it. Tests
// set a fake one with setClock before they make what they test; it is
// held atomically, since a transport may call back into a copy (its trace
// hooks) after the copy, and the test, have ended.
var clockFunc atomic.Pointer[func() time.Time]

func init() {
	setClock(time.Now)
}

// now returns the time on the mirror's clock.
func now() time.Time {
	return (*clockFunc.Load())()
}

// setClock makes f the mirror's clock.
func setClock(f func() time.Time) {
	clockFunc.Store(&f)
}
