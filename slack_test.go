package mirror

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestStreamSlack drives a streamed copy's body directly: a copy may go
// over its window by what the handler's slack lends, and gives it back as
// its transport catches up; it is cut off when the slack runs out, or when
// it stays over its window without keeping pace for streamGrace.
func TestStreamSlack(t *testing.T) {
	const window = 1024
	newStream := func(slack *streamSlack) *streamBody {
		return newStreamBody(nil, window, slack, -1)
	}
	read := func(s *streamBody, n int) {
		t.Helper()
		if _, err := io.ReadFull(s, make([]byte, n)); err != nil {
			t.Fatalf("reading %d bytes: %v", n, err)
		}
	}

	t.Run("a hiccup is absorbed and the slack given back", func(t *testing.T) {
		slack := new(streamSlack)
		slack.left.Store(4096)
		s := newStream(slack)
		if !s.write(make([]byte, 3000)) {
			t.Fatal("a copy 3000 bytes behind, with a 1024-byte window and 4096 bytes of slack, was cut off")
		}
		if got := slack.left.Load(); got != 4096-(3000-window) {
			t.Errorf("slack left = %d, want %d lent", got, 3000-window)
		}
		read(s, 3000)
		if got := slack.left.Load(); got != 4096 {
			t.Errorf("slack left once caught up = %d, want all 4096 back", got)
		}
		if reason, cut := s.stop(); cut {
			t.Errorf("copy cut off (%v), want it whole", reason)
		}
	})

	t.Run("the slack runs out", func(t *testing.T) {
		slack := new(streamSlack)
		slack.left.Store(4096)
		s := newStream(slack)
		if s.write(make([]byte, window+4097)) {
			t.Fatal("a copy more than its window and the slack behind was not cut off")
		}
		if reason, cut := s.stop(); !cut || reason != cutOffSlow {
			t.Errorf("stop = %v, %v, want cut_off_slow", reason, cut)
		}
		if got := slack.left.Load(); got != 4096 {
			t.Errorf("slack left after the cut = %d, want all 4096 back", got)
		}
	})

	t.Run("no slack", func(t *testing.T) {
		s := newStream(new(streamSlack))
		if s.write(make([]byte, window+1)) {
			t.Fatal("a copy a byte over its window, with no slack, was not cut off")
		}
	})

	t.Run("over the window without keeping pace", func(t *testing.T) {
		slack := new(streamSlack)
		slack.left.Store(1 << 20)
		s := newStream(slack)
		ctx, cancel := s.context(context.Background(), time.Hour)
		defer cancel()
		if !s.write(make([]byte, 2*window)) {
			t.Fatal("cut off at once, want streamGrace first")
		}
		// the shadow takes nothing: the copy is cut off after streamGrace
		receive(t, ctx.Done(), "the copy's context to end")
		if reason, cut := s.stop(); !cut || reason != cutOffSlow {
			t.Errorf("stop = %v, %v, want cut_off_slow", reason, cut)
		}
		if got := slack.left.Load(); got != 1<<20 {
			t.Errorf("slack left after the cut = %d, want all of it back", got)
		}
	})
}
