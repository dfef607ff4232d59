package compare

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
)

// Comparer is one target's comparison: its config, its report (kept
// across config loads under the target's name), its Prometheus series and
// the logger of its mismatches.
type Comparer struct {
	cfg     *Config
	name    string
	report  *comparisonReport
	metrics *targetCompareMetrics
	logger  *zap.Logger
}

// reports holds one comparisonReport per comparing target name, shared by
// every config that uses the name, so that a reload keeps the counts.
var reports = caddy.NewUsagePool()

// NewComparer provisions cfg and makes the comparison of the target named
// name, whose upstream is shown in its report, with its series in reg
// (the config's registry; nil leaves them unregistered) and its
// mismatches logged to logger. Close gives back its report.
func NewComparer(cfg *Config, name, upstream string, reg prometheus.Registerer, logger *zap.Logger) (*Comparer, error) {
	cfg.Provision()
	m, err := newCompareMetrics(reg)
	if err != nil {
		return nil, err
	}
	v, _, err := reports.LoadOrNew(name, func() (caddy.Destructor, error) {
		return new(comparisonReport), nil
	})
	if err != nil {
		return nil, err
	}
	report := v.(*comparisonReport)
	report.configure(upstream, cfg)
	return &Comparer{
		cfg:     cfg,
		name:    name,
		report:  report,
		metrics: m.forTarget(name, cfg, &report.labels),
		logger:  logger,
	}, nil
}

// Close gives back the comparer's report; no copy may still compare.
func (c *Comparer) Close() {
	if c.report != nil {
		_, _ = reports.Delete(c.name)
		c.report = nil
	}
}

// Compare compares shadow, a copy's response in ex, with the primary's,
// in the copy's own goroutine, once the responses it needs have arrived:
// the primary's and, when the target has a noise source, noise, the noise
// copy's (nil when it has none). ctx is the copy's: it bounds the waits,
// and a primary still running when it ends is counted as streaming,
// unless unloading says that the config is being unloaded, when nothing
// is counted.
func (c *Comparer) Compare(ctx context.Context, ex *Exchange, shadow, noise *Response, unloading func() bool) {
	primary := ex.primary
	select {
	case <-primary.done:
	case <-ctx.Done():
		select {
		case <-primary.done:
			// the primary is done too: what the shadow sent before its
			// time ran out is compared, and differs if it was cut
		default:
			if !unloading() { // the primary outlived the timeout
				c.skip(skippedStreaming)
			}
			return
		}
	}
	switch {
	case primary.streaming:
		c.skip(skippedStreaming)
		return
	case primary.incomplete:
		// not the primary's answer: nothing to compare with
		c.skip(primaryIncomplete)
		return
	case !primary.got:
		c.skip(noPrimary)
		return
	}
	if noise != nil {
		select {
		case <-noise.done:
			if !noise.got {
				noise = nil
			}
		case <-ctx.Done():
			noise = nil
		}
	}

	rec := c.judge(ex, primary, shadow, noise)
	c.metrics.results[rec.result].Inc()
	if rec.result == mismatch {
		if ce := c.logger.Check(zapcore.InfoLevel, "mirror response differs"); ce != nil {
			ce.Write(
				zap.String("target", c.name),
				zap.String("endpoint", rec.endpoint),
				zap.String("method", ex.method),
				zap.String("uri", ex.sampleURI(c.cfg)),
				zap.Int("primary_status", primary.status),
				zap.Int("shadow_status", shadow.status),
				zap.Any("differences", rec.verdicts),
			)
		}
	}
}

// judge compares a shadow's response, and the noise target's when there
// is one, with the primary's, records the exchange in the report and the
// series, and returns its result, its endpoint and the verdict on each
// difference.
func (c *Comparer) judge(ex *Exchange, primary, shadow, noise *Response) recorded {
	cfg := c.cfg
	p, s := decode(primary, cfg.MaxBodySize), decode(shadow, cfg.MaxBodySize)
	defer p.release()
	defer s.release()
	diffs, truncated := diffResponses(cfg, &p, &s)
	cfg.redaction.apply(diffs) // before a sample or a log line holds them
	o := observation{
		method:        ex.method,
		path:          ex.path,
		uri:           ex.sampleURI(cfg),
		primaryStatus: primary.status,
		shadowStatus:  shadow.status,
		primaryTime:   primary.duration,
		shadowTime:    shadow.duration,
		diffs:         diffs,
		fields:        distinctFields(diffs),
		hadNoise:      noise != nil,
		truncated:     truncated,
	}
	if noise != nil {
		n := decode(noise, cfg.MaxBodySize)
		noiseDiffs, _ := diffResponses(cfg, &p, &n)
		n.release()
		o.noiseFields = distinctFields(noiseDiffs)
		o.noiseTime = noise.duration
	}
	grpc := isGRPC(p.header.Get("Content-Type"))
	if grpc {
		o.primaryGRPC, o.shadowGRPC = grpcStatus(&p), grpcStatus(&s)
	}
	o.endpoint = cfg.namedEndpoint(ex.method, ex.path, shadow.endpointHint, grpc)
	rec := c.report.record(&o)
	c.metrics.observe(&o, &rec)
	return rec
}

// skip counts an exchange that was not compared.
func (c *Comparer) skip(r compareResult) {
	c.report.count(r)
	c.metrics.results[r].Inc()
}
