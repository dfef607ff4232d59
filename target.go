package mirror

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-mirror/mirror/compare"
)

// Target is one shadow upstream, with the rules that choose which requests
// are copied to it and how each copy is sent. Every target is independent:
// it has its own matchers, sampling, rate cap, header edits, timeout,
// transport and counters.
type Target struct {
	// A name for the target: the target label in metrics and logs, the
	// name the report is kept under, and what another target's
	// compare.noise_from refers to. Must be unique within the handler.
	// Default: the upstream, or the upstreams joined by spaces, as
	// written; for dynamic upstreams, the source and the name it asks for
	// ("dynamic a reviews-v2:9080", "dynamic srv _http._tcp.reviews-v2").
	Name string `json:"name,omitempty"`

	// The shadow, when it is one upstream, written as reverse_proxy's are
	// (see upstreams.go): host:port, http://, https://, h2c:// or
	// unix//path. An http:// or https:// upstream may have a path prefix,
	// put in front of every request path (with upstream http://s/shadow,
	// /a?q=1 is copied as /shadow/a?q=1). Placeholders known when the
	// config loads, such as {env.*}, are expanded. A query, fragment or user
	// info is an error. Required, unless upstreams or dynamic_upstreams
	// is set.
	Upstream string `json:"upstream,omitempty"`

	// The shadow's replicas, when it is a pool of several, each written as
	// upstream is, with the same scheme and path prefix; a port range makes
	// one replica per port. Each copy goes to one of them (see pool.go).
	// Default: upstream alone.
	Upstreams []string `json:"upstreams,omitempty"`

	// How a copy's replica is chosen among the available ones: any of
	// reverse_proxy's selection policies (random, round_robin, least_conn,
	// first, ip_hash, uri_hash, header, cookie, ...), which see the copy's
	// request as reverse_proxy sees the client's. least_conn counts the
	// copies in flight to each replica. Default: random.
	SelectionPolicyRaw json.RawMessage `json:"selection_policy,omitempty" caddy:"namespace=http.reverse_proxy.selection_policies inline_key=policy"`

	// Where the replicas come from instead: any of reverse_proxy's dynamic
	// upstream sources (a, srv, multi), asked every second in the target's
	// own goroutine, so that replicas that appear and disappear are picked
	// up without a reload; they take the scheme of upstreams, or http.
	// Default: none.
	DynamicUpstreamsRaw json.RawMessage `json:"dynamic_upstreams,omitempty" caddy:"namespace=http.reverse_proxy.upstreams inline_key=source"`

	// The percentage of candidate requests to copy, from 0 to 100; 0.01
	// copies one request in 10,000 and 0 turns the target off.
	// Default: 100 (every candidate) when absent.
	Percent *float64 `json:"percent,omitempty"`

	// Matcher sets, from any http.matchers module, that choose which
	// requests are candidates for copying. The sets are OR'd, as in a
	// route's match. Default: every request is a candidate.
	MatcherSetsRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	// A placeholder, such as {http.request.header.X-User-Id}, whose value
	// makes sampling sticky: the decision is a deterministic hash of the
	// value, so the same user is always in or always out, on every Caddy
	// instance, and raising percent only ever adds users. When the value is
	// empty the decision falls back to random. Default: random sampling.
	SampleBy string `json:"sample_by,omitempty"`

	// The most copies per second sent to this target, enforced by a token
	// bucket that holds one second's worth. The excess is dropped and
	// counted (outcome dropped_rate). Must not be negative.
	// Default: 0, no cap.
	MaxRate float64 `json:"max_rate,omitempty"`

	// Header edits (set, add, delete, replace) applied to the copy only;
	// the primary request is never changed. Placeholders are resolved
	// against the original request. Setting Host changes the copy's Host.
	// Default: no edits.
	Headers *headers.HeaderOps `json:"headers,omitempty"`

	// Whether copies carry the request's body. Off, a copy has no body and
	// is sent at once, without waiting for the primary to read the body,
	// as nginx's mirror_request_body off and Traefik's mirrorBody false
	// do: for shadows that need only the requests' shape. Default: true.
	RequestBody *bool `json:"request_body,omitempty"`

	// How long the whole round trip to the shadow may take, from sending
	// the request to the end of reading its response. Must not be
	// negative. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// How many copies in a row must fail (a transport error or a timeout;
	// any response counts as a success) for the target to be marked
	// unhealthy. While it is, its copies are dropped at once (outcome
	// dropped_unhealthy) without a connection being made, and every
	// fail_duration one copy goes through as a probe; a probe that gets a
	// response makes the target healthy again. -1 never marks it
	// unhealthy. Default: 5.
	MaxFails int `json:"max_fails,omitempty"`

	// How long an unhealthy target is left alone before a probe copy is
	// sent. Must not be negative. Default: 10s.
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`

	// How many copies may be in flight to this target at once, a limit
	// that adapts to the shadow; see Concurrency. Default: adaptive,
	// between 4 and the target's share of max_in_flight.
	Concurrency *Concurrency `json:"concurrency,omitempty"`

	// Compare this target's responses with the primary's, field by field,
	// off the request path; see package compare. Default: not compared.
	Compare *compare.Config `json:"compare,omitempty"`

	// The transport that sends the copies: any http.reverse_proxy.transport
	// module, so TLS, HTTP/2, dial timeouts and keep-alive work as they do
	// in reverse_proxy. For the http transport, unless set otherwise, the
	// idle connection pool is sized to max_in_flight and compression is
	// off, so copies carry the client's Accept-Encoding verbatim.
	// Default: http (with TLS for an https:// upstream).
	TransportRaw json.RawMessage `json:"transport,omitempty" caddy:"namespace=http.reverse_proxy.transport inline_key=protocol"`

	// Transport is the loaded transport module.
	Transport http.RoundTripper `json:"-"`

	pool        *pool                       // its replicas
	source      reverseproxy.UpstreamSource // its dynamic upstreams, if any
	stopRefresh context.CancelFunc          // stops asking source
	scheme      string                      // http, https or h2c, of every replica
	pathPrefix  string                      // decoded path prefix, without a trailing slash
	rawPrefix   string                      // the same prefix, escaped
	label       string                      // the target label in metrics and logs
	marker      string                      // the handler's loop marker, set on every copy
	timeout     time.Duration
	matcherSets caddyhttp.MatcherSets
	sampler     *sampler
	counters    [numOutcomes]prometheus.Counter
	inFlight    prometheus.Gauge
	// reserved counts the copies admitted for this target and not yet
	// ended, waiting for a slot or in flight: at most ceiling, the target's
	// share of max_in_flight, so that a target whose copies wait cannot
	// take the slots of the others; taken on the request path, without a
	// lock
	reserved atomic.Int64
	ceiling  int64
	// sampledLogger logs at most one line per message per second for this
	// target, so that a dead or diverging target cannot flood the log, nor
	// hide another target's lines
	sampledLogger *zap.Logger
	durations     prometheus.ObserverVec
	limitGauge    prometheus.Gauge // the sum of its replicas' limits
	waitingGauge  prometheus.Gauge // copies waiting for a slot
	healthyGauge  prometheus.Gauge // replicas that are not ejected
	replicaCopies *prometheus.CounterVec
	// the replica label values in use (see replicaLabel)
	replicaLabelsMu sync.Mutex
	replicaLabels   map[string]struct{}

	injectedHeaders  []string // header fields whose values Headers writes, never logged
	editsUseUpstream bool     // Headers uses the upstream placeholders
	hideAllHeaders   bool     // Headers rewrites every field: log no header values

	comparison targetComparison // its part in comparisons
}

// provision prepares t for use by a handler whose in-flight limit is
// maxInFlight, of which share is t's equal part.
func (t *Target) provision(ctx caddy.Context, metrics *mirrorMetrics, maxInFlight, share int) error {
	t.label = cmp.Or(t.Name, t.Upstream, strings.Join(t.Upstreams, " "), dynamicLabel(t.DynamicUpstreamsRaw))
	t.counters, t.inFlight, t.durations = metrics.forTarget(t.label)

	t.timeout = time.Duration(t.Timeout)
	if t.timeout == 0 {
		t.timeout = defaultTimeout
	}
	t.sampler = newSampler(t.Percent, t.SampleBy, t.MaxRate, now)
	t.sampledLogger = ctx.Logger().WithOptions(zap.WrapCore(func(core zapcore.Core) zapcore.Core {
		// at most one line per message per second, for each target
		return zapcore.NewSamplerWithOptions(core, time.Second, 1, 0)
	}))
	t.limitGauge = metrics.concurrencyLimit.WithLabelValues(t.label)
	t.waitingGauge = metrics.waiting.WithLabelValues(t.label)
	t.healthyGauge = metrics.replicasHealthy.WithLabelValues(t.label)
	t.replicaCopies = metrics.replicaCopies.MustCurryWith(prometheus.Labels{"target": t.label})
	settings := t.limitSettings(share)
	t.ceiling = int64(settings.ceiling)
	parsed, err := t.parseTargetUpstreams()
	if err != nil {
		return err
	}
	if err := t.loadTransport(ctx, maxInFlight); err != nil {
		return err
	}
	if err := t.provisionPool(ctx, settings, parsed); err != nil {
		return err
	}

	if err := t.provisionMatchers(ctx); err != nil {
		return err
	}
	if t.Headers != nil {
		if err := t.Headers.Provision(ctx); err != nil {
			return fmt.Errorf("provisioning headers: %v", err)
		}
	}
	t.injectedHeaders, t.hideAllHeaders = injectedHeaderNames(t.Headers)
	t.provisionUpstreamValues()
	return t.provisionComparer(ctx)
}

// checkSampleBy checks that sample_by holds a placeholder: a literal is
// the same for every request, so it would copy all of them or none.
func checkSampleBy(v string) error {
	if open := strings.Index(v, "{"); open < 0 || !strings.Contains(v[open:], "}") {
		return fmt.Errorf("sample_by %q is not a placeholder: write one such as {http.request.header.X-User-Id}; a literal is the same for every request", v)
	}
	return nil
}

// checkCopyPlaceholders refuses, in a header edit of a copy, the
// placeholders that never have a value when a copy is made: the
// response's, an error's, and reverse_proxy's own, but for the upstream
// the copy goes to, which the copy sets (see newCopy).
func checkCopyPlaceholders(v string) error {
	for rest := v; ; {
		open := strings.Index(rest, "{")
		if open < 0 {
			return nil
		}
		end := strings.Index(rest[open:], "}")
		if end < 0 {
			return nil
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		switch {
		case strings.HasPrefix(name, "http.response."), strings.HasPrefix(name, "http.error."):
			return fmt.Errorf("{%s} never has a value for a copy, which is made before the primary answers", name)
		case strings.HasPrefix(name, "http.reverse_proxy.") && !slices.Contains(upstreamPlaceholders[:], name):
			return fmt.Errorf("{%s} is reverse_proxy's own and has no value for a copy; the copy's upstream is {http.reverse_proxy.upstream.hostport} (or .address, .host, .port)", name)
		}
	}
}

// numUpstreamPlaceholders is how many upstreamPlaceholders there are.
const numUpstreamPlaceholders = 4

// upstreamPlaceholders are the placeholders of reverse_proxy that a
// copy's header edits can use: they name the copy's own upstream.
var upstreamPlaceholders = [numUpstreamPlaceholders]string{
	"http.reverse_proxy.upstream.address",
	"http.reverse_proxy.upstream.hostport",
	"http.reverse_proxy.upstream.host",
	"http.reverse_proxy.upstream.port",
}

// provisionUpstreamValues finds whether t's header edits use the
// upstream placeholders, which name each copy's replica.
func (t *Target) provisionUpstreamValues() {
	t.editsUseUpstream = false
	for _, v := range headerOpValues(t.Headers) {
		if strings.Contains(v, "{http.reverse_proxy.upstream.") {
			t.editsUseUpstream = true
		}
	}
}

// headerOpValues lists every value that ops writes.
func headerOpValues(ops *headers.HeaderOps) []string {
	if ops == nil {
		return nil
	}
	var values []string
	for _, vs := range ops.Set {
		values = append(values, vs...)
	}
	for _, vs := range ops.Add {
		values = append(values, vs...)
	}
	for _, rs := range ops.Replace {
		for _, r := range rs {
			values = append(values, r.Replace)
		}
	}
	return values
}

// checkHeaderOps checks every value that ops writes.
func checkHeaderOps(ops *headers.HeaderOps) error {
	for _, v := range headerOpValues(ops) {
		if err := checkCopyPlaceholders(v); err != nil {
			return fmt.Errorf("headers: %v", err)
		}
	}
	return nil
}

// validate checks t's configured values; it changes nothing.
func (t *Target) validate() error {
	// written so that NaN, for which every comparison is false, fails too
	if t.Percent != nil && !(*t.Percent >= 0 && *t.Percent <= 100) {
		return fmt.Errorf("percent must be between 0 and 100, got %v", *t.Percent)
	}
	if math.IsNaN(t.MaxRate) || math.IsInf(t.MaxRate, 0) {
		return fmt.Errorf("max_rate must be a finite number, got %v", t.MaxRate)
	}
	if t.MaxRate < 0 {
		return fmt.Errorf("max_rate must not be negative, got %v", t.MaxRate)
	}
	if t.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative, got %v", time.Duration(t.Timeout))
	}
	if t.MaxFails < -1 {
		return fmt.Errorf("max_fails must be -1 (never unhealthy) or more, got %d", t.MaxFails)
	}
	if t.FailDuration < 0 {
		return fmt.Errorf("fail_duration must not be negative, got %v", time.Duration(t.FailDuration))
	}
	if t.SampleBy != "" {
		if err := checkSampleBy(t.SampleBy); err != nil {
			return err
		}
	}
	if err := checkHeaderOps(t.Headers); err != nil {
		return err
	}
	if t.Compare != nil {
		return t.Compare.Validate()
	}
	return nil
}

// configureHealth configures replica r's circuit breaker, which logs
// when the replica is ejected and back.
func (t *Target) configureHealth(r *replica, logger *zap.Logger) {
	maxFails, failDuration := t.MaxFails, time.Duration(t.FailDuration)
	if maxFails == 0 {
		maxFails = defaultMaxFails
	}
	if failDuration == 0 {
		failDuration = defaultFailDuration
	}
	label, healthy := t.label, t.healthyGauge
	r.state.health.configure(maxFails, failDuration, func(ok bool) {
		defer func() { healthy.Set(float64(t.pool.healthy())) }()
		if ok {
			logger.Info("mirror target healthy again", zap.String("target", label), zap.String("replica", r.dial))
			return
		}
		logger.Warn("mirror target unhealthy: dropping its copies, probing it again after fail_duration",
			zap.String("target", label), zap.String("replica", r.dial), zap.Int("consecutive_failures", maxFails), zap.Duration("fail_duration", failDuration))
	})
}

// copiesBody reports whether t's copies carry the request's body.
func (t *Target) copiesBody() bool {
	return t.RequestBody == nil || *t.RequestBody
}

// count records one request's outcome for this target.
func (t *Target) count(o outcome) {
	t.counters[o].Inc()
	if hook := onOutcome.Load(); hook != nil {
		(*hook)(t, o)
	}
}

// onOutcome, when set by a test, is called after every outcome is counted.
var onOutcome atomic.Pointer[func(*Target, outcome)]

// observe records the duration of a round trip that got a response.
func (t *Target) observe(status int, d time.Duration) {
	t.durations.WithLabelValues(codeLabel(status)).Observe(d.Seconds())
}

// codeLabel is the code label value of a status: the code itself when
// net/http knows it (about 60 registered codes), its class such as "5xx"
// for another code from 100 to 599, and "other" beyond, so that a shadow
// cycling through made-up statuses makes at most 66 label values.
func codeLabel(status int) string {
	switch {
	case http.StatusText(status) != "":
		return strconv.Itoa(status)
	case status >= 100 && status <= 599:
		return strconv.Itoa(status/100) + "xx"
	default:
		return "other"
	}
}
