package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestPoolTargetJSON: a pool variant's target lists its shadow and the
// other replicas as upstreams, and has no single upstream.
func TestPoolTargetJSON(t *testing.T) {
	raw, err := json.Marshal(mirrorHandler("127.0.0.1:1", &mirrorConfig{shadow: shadowHanging, replicas: []string{"127.0.0.1:2", "127.0.0.1:3"}}))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Targets []struct {
			Upstream  string   `json:"upstream"`
			Upstreams []string `json:"upstreams"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	if len(got.Targets) != 1 || got.Targets[0].Upstream != "" || !slices.Equal(got.Targets[0].Upstreams, want) {
		t.Errorf("targets %+v, want one with upstreams %v", got.Targets, want)
	}
}

// TestKeepOnly: -isolation-only keeps the baseline and the variants named
// exactly, not those whose names only begin the same.
func TestKeepOnly(t *testing.T) {
	variants := []variant{caddyBaseline, {name: "caddy mirror, fast shadow"}, {name: "caddy mirror, fast shadow, compared"}, {name: "caddy mirror, slow shadow"}}
	var names []string
	for _, v := range keepOnly([]string{"fast shadow", " slow shadow"}, variants) {
		names = append(names, v.name)
	}
	if want := []string{caddyBaseline.name, "caddy mirror, fast shadow", "caddy mirror, slow shadow"}; !slices.Equal(names, want) {
		t.Errorf("kept %v, want %v", names, want)
	}
	if got := keepOnly(nil, variants); len(got) != len(variants) {
		t.Errorf("with no names kept %d of %d", len(got), len(variants))
	}
}

// TestTakeUnderSleepResolution: a delay shorter than a sleep can be is
// spent in full, not rounded up to the sleep's resolution.
func TestTakeUnderSleepResolution(t *testing.T) {
	const d = 100 * time.Microsecond
	start := time.Now()
	take(d)
	if took := time.Since(start); took < d {
		t.Errorf("take(%v) returned after %v", d, took)
	}
}
