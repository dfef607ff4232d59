package compare

import (
	"cmp"
	"slices"
)

// tally counts compared exchanges, field by field and by status pair: a
// target's, over all its endpoints, and each endpoint's.
type tally struct {
	compared  int64 // exchanges whose responses were compared
	withNoise int64 // of those, the exchanges with a noise response
	fields    map[string]*fieldCounts
	statuses  map[statusPair]int64
}

type fieldCounts struct {
	differ int64 // exchanges where the target differs from the primary
	noise  int64 // exchanges where the noise target differs from the primary
}

// tallyLimits bounds what a tally counts: past maxFields, new fields are
// counted as otherFields, and past maxPairs new status pairs are not
// counted.
type tallyLimits struct {
	maxFields, maxPairs int
}

// add counts an exchange.
func (t *tally) add(o *observation, lim tallyLimits) {
	t.compared++
	if o.hadNoise {
		t.withNoise++
	}
	if t.fields == nil {
		t.fields = make(map[string]*fieldCounts)
		t.statuses = make(map[statusPair]int64)
	}
	for _, f := range o.fields {
		t.field(f, lim).differ++
	}
	for _, f := range o.noiseFields {
		t.field(f, lim).noise++
	}
	pair := statusPair{o.primaryStatus, o.shadowStatus, o.primaryGRPC, o.shadowGRPC}
	if _, ok := t.statuses[pair]; ok || len(t.statuses) < lim.maxPairs {
		t.statuses[pair]++
	}
}

// field returns the counts of the named field, folding fields past
// lim.maxFields into one.
func (t *tally) field(name string, lim tallyLimits) *fieldCounts {
	if f, ok := t.fields[name]; ok {
		return f
	}
	if len(t.fields) >= lim.maxFields {
		name = otherFields
		if f, ok := t.fields[name]; ok {
			return f
		}
	}
	f := new(fieldCounts)
	t.fields[name] = f
	return f
}

// merge adds o's counts to t's.
func (t *tally) merge(o *tally, lim tallyLimits) {
	t.compared += o.compared
	t.withNoise += o.withNoise
	if t.fields == nil {
		t.fields = make(map[string]*fieldCounts)
		t.statuses = make(map[statusPair]int64)
	}
	for name, f := range o.fields {
		to := t.field(name, lim)
		to.differ += f.differ
		to.noise += f.noise
	}
	for pair, n := range o.statuses {
		if _, ok := t.statuses[pair]; ok || len(t.statuses) < lim.maxPairs {
			t.statuses[pair] += n
		}
	}
}

// verdict judges a field on its rates in t: a regression when the target
// differs more often than the noise target by more than threshold, in
// percentage points; without a noise source, every difference is one.
func (t *tally) verdict(f *fieldCounts, noiseFrom string, threshold float64) string {
	if noiseFrom == "" {
		return VerdictRegression
	}
	raw, noise := percent(f.differ, t.compared), percent(f.noise, t.withNoise)
	switch {
	case raw-noise > threshold:
		return VerdictRegression
	case noise > 0:
		return VerdictNoise
	default:
		return VerdictBelow
	}
}

// fieldReports returns the fields that the target differs in, sorted,
// at most maxReportedFields.
func (t *tally) fieldReports(noiseFrom string, threshold float64) []FieldReport {
	out := []FieldReport{}
	for name, f := range t.fields {
		if f.differ == 0 {
			continue // only the noise target differs here
		}
		out = append(out, FieldReport{
			Field:        name,
			Differences:  f.differ,
			RawPercent:   percent(f.differ, t.compared),
			NoisePercent: percent(f.noise, t.withNoise),
			Verdict:      t.verdict(f, noiseFrom, threshold),
		})
	}
	sortFields(out)
	return out[:min(len(out), maxReportedFields)]
}

// statusReports returns the status pairs, most frequent first.
func (t *tally) statusReports() []StatusPairReport {
	out := []StatusPairReport{}
	for pair, n := range t.statuses {
		out = append(out, StatusPairReport{pair.primary, pair.shadow, pair.primaryGRPC, pair.shadowGRPC, n, percent(n, t.compared)})
	}
	slices.SortFunc(out, func(a, b StatusPairReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Primary, b.Primary), cmp.Compare(a.Shadow, b.Shadow),
			cmp.Compare(a.PrimaryGRPC, b.PrimaryGRPC), cmp.Compare(a.ShadowGRPC, b.ShadowGRPC))
	})
	return out
}

// worstVerdict returns the worst of verdicts: regression, then noise,
// then below_threshold; "" when there are none.
func worstVerdict(verdicts ...string) string {
	rank := func(v string) int {
		switch v {
		case VerdictRegression:
			return 3
		case VerdictBelow:
			return 2
		case VerdictNoise:
			return 1
		}
		return 0
	}
	worst := ""
	for _, v := range verdicts {
		if rank(v) > rank(worst) {
			worst = v
		}
	}
	return worst
}

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// sortFields orders fields for the report: regressions first, then by
// how far the target's rate is above the noise.
func sortFields(fields []FieldReport) {
	slices.SortFunc(fields, func(a, b FieldReport) int {
		if ar, br := a.Verdict == VerdictRegression, b.Verdict == VerdictRegression; ar != br {
			if ar {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.RawPercent-b.NoisePercent, a.RawPercent-a.NoisePercent); c != 0 {
			return c
		}
		return cmp.Compare(a.Field, b.Field)
	})
}
