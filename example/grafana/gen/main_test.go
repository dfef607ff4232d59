package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// committed is the dashboard as the repository holds it: a symbolic link to
// ../mirror.json. go test caches a result only while the files that the test
// opened inside this module are unchanged, and it does not look at files
// outside the module, such as ../mirror.json; through the link, whose target
// go test stats, a changed mirror.json runs the tests again.
const committed = "testdata/mirror.json"

// TestCommittedLink checks that committed is the link to ../mirror.json, so
// that the other tests read the file the generator writes.
func TestCommittedLink(t *testing.T) {
	target, err := os.Readlink(committed)
	if err != nil {
		t.Fatalf("%s: %v (it must be a symbolic link to ../../mirror.json; a checkout without symbolic links cannot run these tests)", committed, err)
	}
	if target != "../../mirror.json" {
		t.Fatalf("%s links to %s, want ../../mirror.json", committed, target)
	}
}

// TestGolden fails when the committed dashboard is not what the generator
// writes: edit main.go, never mirror.json, then regenerate.
func TestGolden(t *testing.T) {
	want, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
		line++
	}
	at := func(l []string) string {
		if line < len(l) {
			return l[line]
		}
		return "(end of file)"
	}
	t.Errorf("example/grafana/mirror.json is not what the generator writes; run `go run ./example/grafana/gen` from the repository root.\n"+
		"first difference, line %d:\n  committed: %s\n  generated: %s", line+1, at(gl), at(wl))
}

// dashboardFile is what these checks read of mirror.json.
type dashboardFile struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Requires []struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"__requires"`
	Panels []struct {
		ID         int        `json:"id"`
		Type       string     `json:"type"`
		Title      string     `json:"title"`
		Datasource *reference `json:"datasource"`
		GridPos    struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Targets []struct {
			RefID      string     `json:"refId"`
			Expr       string     `json:"expr"`
			Datasource *reference `json:"datasource"`
		} `json:"targets"`
		Panels  []json.RawMessage `json:"panels"`
		Options struct {
			Legend *struct {
				ShowLegend bool `json:"showLegend"`
			} `json:"legend"`
		} `json:"options"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type reference struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readCommitted(t *testing.T) (dashboardFile, []byte) {
	t.Helper()
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardFile
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", committed, err)
	}
	return d, raw
}

// TestImportable checks what Grafana's import needs of the committed file:
// one data source input, asked for in the import dialog, that every panel
// and query refers to, and __requires for Grafana, the data source plugin
// and each panel plugin.
func TestImportable(t *testing.T) {
	d, raw := readCommitted(t)

	if len(d.Inputs) != 1 {
		t.Fatalf("__inputs has %d entries, want one data source: %+v", len(d.Inputs), d.Inputs)
	}
	in := d.Inputs[0]
	if in.Type != "datasource" || in.PluginID != "prometheus" || in.Name == "" {
		t.Errorf("__inputs[0] = %+v, want a prometheus datasource input", in)
	}
	ref := "${" + in.Name + "}"

	requires := map[string]bool{}
	for _, r := range d.Requires {
		requires[r.Type+"/"+r.ID] = true
		if r.Type == "grafana" && r.Version == "" {
			t.Errorf("__requires names Grafana with no version")
		}
	}
	for _, need := range []string{"grafana/grafana", "datasource/" + in.PluginID} {
		if !requires[need] {
			t.Errorf("__requires lacks %s: %+v", need, d.Requires)
		}
	}

	// A data source variable would let panels refer to something other
	// than the input; there is none.
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			t.Errorf("templating variable %q is a data source; the panels use the __inputs data source %s", v.Name, ref)
		}
	}
	// Every datasource reference anywhere in the file is the input's.
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	refs := 0
	walkDatasources(tree, "$", func(path string, v any) {
		refs++
		m, ok := v.(map[string]any)
		if !ok || m["type"] != in.PluginID || m["uid"] != ref {
			t.Errorf("%s = %v, want {type: %s, uid: %s}", path, v, in.PluginID, ref)
		}
	})

	if len(d.Panels) == 0 {
		t.Fatal("the dashboard has no panel")
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range d.Panels {
		name := p.Title
		if p.Type == "row" || len(p.Panels) > 0 {
			t.Errorf("panel %q is a row; panels stay at the top level, where the fleet test reads panels[].targets[].expr", name)
		}
		if !requires["panel/"+p.Type] {
			t.Errorf("__requires lacks panel/%s, used by %q", p.Type, name)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, name, p.ID)
		}
		ids[p.ID] = name
		if p.Datasource == nil {
			t.Errorf("panel %q has no datasource", name)
		}
		if p.Type == "timeseries" && (p.Options.Legend == nil || !p.Options.Legend.ShowLegend) {
			t.Errorf("panel %q hides its legend", name)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", name)
		}
		refIDs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q, query %s: no expr", name, q.RefID)
			}
			if q.RefID == "" || refIDs[q.RefID] {
				t.Errorf("panel %q: query refId %q is empty or repeated", name, q.RefID)
			}
			refIDs[q.RefID] = true
			if q.Datasource == nil {
				t.Errorf("panel %q, query %s: no datasource", name, q.RefID)
			}
		}
	}
	// Every panel and every query carries a datasource, each counted above.
	if refs < len(d.Panels)+queries {
		t.Errorf("%d datasource references, want at least one per panel and per query (%d)", refs, len(d.Panels)+queries)
	}
}

// walkDatasources calls f with the value of every "datasource" key in v.
func walkDatasources(v any, path string, f func(string, any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if k == "datasource" {
				f(path+"."+k, c)
				continue
			}
			walkDatasources(c, path+"."+k, f)
		}
	case []any:
		for i, c := range v {
			walkDatasources(c, path+"["+strconv.Itoa(i)+"]", f)
		}
	}
}

// TestLayout checks that the panels fit the 24-column grid and do not
// overlap.
func TestLayout(t *testing.T) {
	d, _ := readCommitted(t)
	type cell struct{ x, y int }
	owner := map[cell]string{}
	for _, p := range d.Panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
			continue
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := owner[cell{x, y}]; taken {
					t.Errorf("panels %q and %q overlap at column %d, row %d", other, p.Title, x, y)
					return
				}
				owner[cell{x, y}] = p.Title
			}
		}
	}
}
