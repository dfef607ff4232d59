package mirror

// outcome is what became of one request selected for one target.
type outcome int

const (
	mirrored              outcome = iota // a response came back, whatever its status
	failed                               // a transport error, a timeout or a cancellation
	droppedInFlight                      // max_in_flight was reached
	droppedConcurrency                   // the target's concurrency limit was reached
	cancelledLate                        // sent, then cancelled: the target had stopped answering
	droppedRate                          // max_rate was reached
	droppedUnhealthy                     // the target's recent copies failed
	skippedBodyTooLarge                  // the body is over max_body_size
	skippedBodyIncomplete                // the body was not read to its end
	skippedUnsupported                   // an Upgrade or CONNECT request
	skippedLoop                          // the request is itself a copy
	skippedUnsafePath                    // the path hides dot segments that could leave the target's prefix
	cutOffSlow                           // a streamed copy's shadow fell stream_window behind
	cutOffIncomplete                     // a streamed body was not read to its end
	cutOffTooLarge                       // a streamed body grew past max_stream_size
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	mirrored:              "mirrored",
	failed:                "failed",
	droppedInFlight:       "dropped_in_flight",
	droppedConcurrency:    "dropped_concurrency",
	cancelledLate:         "cancelled_late",
	droppedRate:           "dropped_rate",
	droppedUnhealthy:      "dropped_unhealthy",
	skippedBodyTooLarge:   "skipped_body_too_large",
	skippedBodyIncomplete: "skipped_body_incomplete",
	skippedUnsupported:    "skipped_unsupported",
	skippedLoop:           "skipped_loop",
	skippedUnsafePath:     "skipped_unsafe_path",
	cutOffSlow:            "cut_off_slow",
	cutOffIncomplete:      "cut_off_incomplete",
	cutOffTooLarge:        "cut_off_too_large",
}

// String returns the outcome's label value.
func (o outcome) String() string {
	return outcomeNames[o]
}

// saysNothingOfHealth reports whether a copy that ended with o tells
// nothing about its shadow's health, so that the circuit breaker ignores
// it: its body was cut short on the client's side, or the shadow took it
// more slowly than the client sent it. A shadow that lags behind a fast
// upload is alive; the breaker is for dead, hung and resetting shadows,
// and opening it would drop the shadow's small copies too. A copy
// cancelled for being late does count: it waited for its answer in
// silence while nothing else was answered, as a hung shadow, or one whose
// TLS handshakes never finish, makes it.
func (o outcome) saysNothingOfHealth() bool {
	return o == cutOffIncomplete || o == cutOffTooLarge || o == cutOffSlow
}
