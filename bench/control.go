package main

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// tagCounts is what the backends saw of one tag's requests: the primary's
// count and each shadow's.
type tagCounts struct {
	Primary tagCount            `json:"primary"`
	Shadows map[string]tagCount `json:"shadows"`
}

// primaryControl is the primary's child's control endpoint:
//
//	GET  /received            how many requests the primary has received
//	GET  /count?tag=T         the primary's tagCount of T, as JSON
//	GET  /sched               the child's own scheduling latencies so far, as JSON
func primaryControl(primary *backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, primary.tags.get(r.URL.Query().Get("tag")))
	})
	mux.HandleFunc("/sched", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, readSchedLatencies())
	})
	mux.HandleFunc("/received", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, primary.received.Load())
	})
	return mux
}

// shadowsControl is the shadows' child's control endpoint:
//
//	POST /flapping?mode=M     switch the flapping shadow to M
//	GET  /count?tag=T         each shadow's tagCount of T by kind, as JSON
func shadowsControl(shadows map[string]*backend, flapping *flappingShadow) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/flapping", func(w http.ResponseWriter, r *http.Request) {
		if err := flapping.set(r.URL.Query().Get("mode")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		tag := r.URL.Query().Get("tag")
		counts := map[string]tagCount{}
		for kind, s := range shadows {
			counts[kind] = s.tags.get(tag)
		}
		writeJSON(w, counts)
	})
	return mux
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// counts asks the backends what they saw of tag's requests.
func (e *environment) counts(tag string) (tagCounts, error) {
	var c tagCounts
	if err := e.controlJSON(rolePrimary, "/count?tag="+tag, &c.Primary); err != nil {
		return c, err
	}
	err := e.controlJSON(roleShadows, "/count?tag="+tag, &c.Shadows)
	return c, err
}

// schedLatencies asks the primary's child for its scheduling latencies so
// far.
func (e *environment) schedLatencies() (schedHistogram, error) {
	var h schedHistogram
	err := e.controlJSON(rolePrimary, "/sched", &h)
	return h, err
}

// controlJSON fetches a JSON answer of the role's control endpoint into v.
func (e *environment) controlJSON(role, path string, v any) error {
	url := "http://" + e.children[role].control + path
	body, err := getURL(controlClient, url, "application/json")
	if err != nil {
		return fmt.Errorf("asking the backends: %v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %v; the body begins %q", url, err, excerpt(body))
	}
	return nil
}
