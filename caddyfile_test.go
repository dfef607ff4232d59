package mirror

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  string
	}{
		{
			name:  "inline upstream",
			input: `mirror http://127.0.0.1:9002`,
			want:  `{"targets":[{"upstream":"http://127.0.0.1:9002"}]}`,
		},
		{
			name: "inline upstream with options",
			input: `mirror http://reviews-v2:9080 {
				percent 25
			}`,
			want: `{"targets":[{"upstream":"http://reviews-v2:9080","percent":25}]}`,
		},
		{
			name: "percent with a percent sign",
			input: `mirror http://reviews-v2:9080 {
				percent 0.01%
			}`,
			want: `{"targets":[{"upstream":"http://reviews-v2:9080","percent":0.01}]}`,
		},
		{
			name: "several targets",
			input: `mirror {
				to http://reviews-v2:9080 {
					percent 10
				}
				to https://audit.internal {
					match {
						method POST PUT
					}
					header_up -Authorization
				}
				max_body_size 4MB
			}`,
			want: `{"targets":[
				{"upstream":"http://reviews-v2:9080","percent":10},
				{"upstream":"https://audit.internal","match":[{"method":["POST","PUT"]}],"headers":{"delete":["Authorization"]}}
			],"max_body_size":4000000}`,
		},
		{
			name: "concurrency",
			input: `mirror {
				to http://a {
					concurrency {
						floor 2
						ceiling 300
					}
				}
				to http://b {
					concurrency {
						ceiling 64
						fixed
					}
				}
			}`,
			want: `{"targets":[
				{"upstream":"http://a","concurrency":{"floor":2,"ceiling":300}},
				{"upstream":"http://b","concurrency":{"ceiling":64,"fixed":true}}
			]}`,
		},
		{
			name:  "wait_for_primary 0 sends each copy at once",
			input: "mirror http://a {\n\twait_for_primary 0\n}",
			want:  `{"targets":[{"upstream":"http://a"}]}`,
		},
		{
			name: "every option",
			input: `mirror http://s:9080/shadow {
				percent 12.5
				match {
					header User-Agent *testing*
				}
				match {
					path /api/*
				}
				sample_by {http.request.header.X-User-Id}
				max_rate 200
				header_up X-Env shadow
				header_up +X-Extra one
				header_up X-Trace ^a(.*)$ b$1
				timeout 5s
				max_fails 3
				fail_duration 1m
				unhealthy_status 503 5xx
				unhealthy_latency 2s
				health_uri /healthz
				health_interval 5s
				health_headers {
					X-Probe mirror
				}
				transport http {
					dial_timeout 2s
				}
				max_body_size 1MiB
				large_bodies stream
				stream_window 256KiB
				max_stream_size 1GiB
				max_in_flight 64
				wait_for_primary 20ms
			}`,
			want: `{"targets":[{
				"upstream":"http://s:9080/shadow",
				"percent":12.5,
				"match":[{"header":{"User-Agent":["*testing*"]}},{"path":["/api/*"]}],
				"sample_by":"{http.request.header.X-User-Id}",
				"max_rate":200,
				"headers":{"add":{"X-Extra":["one"]},"set":{"X-Env":["shadow"]},"replace":{"X-Trace":[{"search_regexp":"^a(.*)$","replace":"b$1"}]}},
				"timeout":5000000000,
				"max_fails":3,
				"fail_duration":60000000000,
				"unhealthy_status":[503,5],
				"unhealthy_latency":2000000000,
				"health_checks":{"active":{"uri":"/healthz","interval":5000000000,"headers":{"X-Probe":["mirror"]}}},
				"transport":{"protocol":"http","dial_timeout":2000000000}
			}],"max_body_size":1048576,"large_bodies":"stream","stream_window":262144,"max_stream_size":1073741824,"max_in_flight":64,"wait_for_primary":20000000}`,
		},
		{
			name: "compare, Diffy style",
			input: `mirror {
				to http://reviews-v1-b:9080 {
					name secondary
					percent 0
				}
				to http://reviews-v2:9080 {
					name candidate
					compare {
						noise_from secondary
						status false
						headers Content-Type
						headers Cache-Control
						body json
						ignore /meta/request_id /items/*/updated_at
						max_body_size 64KiB
						threshold 2.5
						samples 10
						samples_include_query
						endpoint GET /users/{id}
						endpoint /products/{id}
						max_endpoints 32
						endpoint_cardinality 16
						latency_threshold 15
						latency_min_difference 10ms
						latency_min_samples 30
						redact /user/email X-Api-Key
					}
				}
			}`,
			want: `{"targets":[
				{"name":"secondary","upstream":"http://reviews-v1-b:9080","percent":0},
				{"name":"candidate","upstream":"http://reviews-v2:9080","compare":{
					"noise_from":"secondary","status":false,"headers":["Content-Type","Cache-Control"],"body":"json",
					"ignore":["/meta/request_id","/items/*/updated_at"],"max_body_size":65536,"threshold":2.5,
					"samples":10,"samples_include_query":true,
					"endpoints":["GET /users/{id}","/products/{id}"],"max_endpoints":32,"endpoint_cardinality":16,
					"latency_threshold":15,"latency_min_difference":10000000,"latency_min_samples":30,
					"redact":["/user/email","X-Api-Key"]}}
			]}`,
		},
		{
			name:  "empty compare block",
			input: "mirror http://a {\n\tcompare\n}",
			want:  `{"targets":[{"upstream":"http://a","compare":{}}]}`,
		},
		{
			name: "inline upstream and more targets",
			input: `mirror http://a {
				percent 50
				to http://b
			}`,
			want: `{"targets":[{"upstream":"http://a","percent":50},{"upstream":"http://b"}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile(%s) error: %v", tc.name, err)
			}
			got, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := normalizeJSON(t, string(got)), normalizeJSON(t, tc.want); g != w {
				t.Errorf("UnmarshalCaddyfile(%s) = %s, want %s", tc.name, g, w)
			}
		})
	}
}

func TestUnmarshalCaddyfile_Error(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		wantErr string
	}{
		{"unknown subdirective", "mirror http://a {\n\tcolour blue\n}", "unrecognized subdirective 'colour'"},
		{"target option without a target", "mirror {\n\tpercent 10\n}", "'percent' applies to a target"},
		{"to without upstream", "mirror {\n\tto\n}", "a 'to' block needs upstreams, or a dynamic subdirective"},
		{"upstreams of two schemes", "mirror {\n\tto http://a https://b\n}", "every upstream of a target must have the same scheme and path prefix"},
		{"upstreams of two prefixes", "mirror http://a/v1 http://b/v2", "every upstream of a target must have the same scheme and path prefix"},
		{"unknown option in to", "mirror {\n\tto http://a {\n\t\tcolour blue\n\t}\n}", "unrecognized subdirective 'colour'"},
		{"percent not a number", "mirror http://a {\n\tpercent lots\n}", "invalid percent 'lots'"},
		{"percent over 100", "mirror http://a {\n\tpercent 150\n}", "invalid percent '150'"},
		{"percent negative", "mirror http://a {\n\tpercent -1\n}", "invalid percent '-1'"},
		{"percent missing", "mirror http://a {\n\tpercent\n}", "wrong argument count"},
		{"percent twice on a line", "mirror http://a {\n\tpercent 1 2\n}", "wrong argument count"},
		{"max_rate negative", "mirror http://a {\n\tmax_rate -5\n}", "invalid max_rate '-5'"},
		{"max_rate not a number", "mirror http://a {\n\tmax_rate fast\n}", "invalid max_rate 'fast'"},
		{"percent NaN", "mirror http://a {\n\tpercent NaN\n}", "invalid percent 'NaN'"},
		{"percent nan", "mirror http://a {\n\tpercent nan\n}", "invalid percent 'nan'"},
		{"percent Inf", "mirror http://a {\n\tpercent Inf\n}", "invalid percent 'Inf'"},
		{"percent +Inf", "mirror http://a {\n\tpercent +Inf\n}", "invalid percent '+Inf'"},
		{"percent -Inf", "mirror http://a {\n\tpercent -Inf\n}", "invalid percent '-Inf'"},
		{"percent infinity", "mirror http://a {\n\tpercent infinity\n}", "invalid percent 'infinity'"},
		{"max_rate NaN", "mirror http://a {\n\tmax_rate NaN\n}", "invalid max_rate 'NaN'"},
		{"max_rate Inf", "mirror http://a {\n\tmax_rate Inf\n}", "invalid max_rate 'Inf'"},
		{"max_rate +Infinity", "mirror http://a {\n\tmax_rate +Infinity\n}", "invalid max_rate '+Infinity'"},
		{"max_rate -inf", "mirror http://a {\n\tmax_rate -inf\n}", "invalid max_rate '-inf'"},
		{"compare endpoint bad", "mirror http://a {\n\tcompare {\n\t\tendpoint GET users\n\t}\n}", "invalid endpoint 'GET users'"},
		{"compare endpoint three words", "mirror http://a {\n\tcompare {\n\t\tendpoint GET /a /b\n\t}\n}", "wrong argument count"},
		{"compare max_endpoints 0", "mirror http://a {\n\tcompare {\n\t\tmax_endpoints 0\n\t}\n}", "invalid max_endpoints '0': must be an integer between 1 and"},
		{"compare latency_threshold negative", "mirror http://a {\n\tcompare {\n\t\tlatency_threshold -5\n\t}\n}", "invalid latency_threshold '-5': must be a non-negative percentage, at Testfile:3"},
		{"compare latency_min_difference bad", "mirror http://a {\n\tcompare {\n\t\tlatency_min_difference soon\n\t}\n}", "invalid latency_min_difference 'soon'"},
		{"compare threshold NaN", "mirror http://a {\n\tcompare {\n\t\tthreshold NaN\n\t}\n}", "invalid threshold 'NaN'"},
		{"compare threshold Inf", "mirror http://a {\n\tcompare {\n\t\tthreshold Inf\n\t}\n}", "invalid threshold 'Inf'"},
		{"compare threshold -Inf", "mirror http://a {\n\tcompare {\n\t\tthreshold -Inf\n\t}\n}", "invalid threshold '-Inf'"},
		{"percent NaN with a percent sign", "mirror http://a {\n\tpercent NaN%\n}", "invalid percent 'NaN%'"},
		{"timeout bad", "mirror http://a {\n\ttimeout soon\n}", "invalid timeout 'soon'"},
		{"sample_by missing", "mirror http://a {\n\tsample_by\n}", "wrong argument count"},
		{"header_up no args", "mirror http://a {\n\theader_up\n}", "wrong argument count"},
		{"header_up too many", "mirror http://a {\n\theader_up a b c d\n}", "wrong argument count"},
		{"transport unknown", "mirror http://a {\n\ttransport carrier_pigeon\n}", "carrier_pigeon"},
		{"transport twice", "mirror http://a {\n\ttransport http\n\ttransport http\n}", "transport already specified"},
		{"match unknown matcher", "mirror http://a {\n\tmatch {\n\t\tcolour blue\n\t}\n}", "colour"},
		{"max_body_size bad", "mirror http://a {\n\tmax_body_size huge\n}", "invalid max_body_size 'huge'"},
		{"max_body_size missing", "mirror http://a {\n\tmax_body_size\n}", "wrong argument count"},
		{"large_bodies bad", "mirror http://a {\n\tlarge_bodies buffer\n}", "invalid large_bodies 'buffer'"},
		{"large_bodies missing", "mirror http://a {\n\tlarge_bodies\n}", "wrong argument count"},
		{"large_bodies twice on a line", "mirror http://a {\n\tlarge_bodies skip stream\n}", "wrong argument count"},
		{"stream_window bad", "mirror http://a {\n\tstream_window wide\n}", "invalid stream_window 'wide'"},
		{"stream_window too small", "mirror http://a {\n\tstream_window 1KiB\n}", "invalid stream_window '1KiB'"},
		{"max_stream_size bad", "mirror http://a {\n\tmax_stream_size lots\n}", "invalid max_stream_size 'lots'"},
		{"max_stream_size missing", "mirror http://a {\n\tmax_stream_size\n}", "wrong argument count"},
		{"max_in_flight bad", "mirror http://a {\n\tmax_in_flight many\n}", "invalid max_in_flight 'many'"},
		{"max_in_flight negative", "mirror http://a {\n\tmax_in_flight -1\n}", "invalid max_in_flight '-1'"},
		{"max_fails bad", "mirror http://a {\n\tmax_fails -2\n}", "invalid max_fails '-2'"},
		{"fail_duration bad", "mirror http://a {\n\tfail_duration -1s\n}", "invalid fail_duration '-1s'"},
		{"name missing", "mirror http://a {\n\tname\n}", "wrong argument count"},
		{"compare with an argument", "mirror http://a {\n\tcompare json\n}", "wrong argument count"},
		{"compare twice", "mirror http://a {\n\tcompare\n\tcompare\n}", "compare already specified"},
		{"compare outside a target", "mirror {\n\tcompare\n}", "'compare' applies to a target"},
		{"compare unknown option", "mirror http://a {\n\tcompare {\n\t\tcolour blue\n\t}\n}", "unrecognized compare option 'colour'"},
		{"compare body bad", "mirror http://a {\n\tcompare {\n\t\tbody xml\n\t}\n}", "invalid body 'xml'"},
		{"compare status bad", "mirror http://a {\n\tcompare {\n\t\tstatus maybe\n\t}\n}", "invalid status 'maybe'"},
		{"compare threshold over 100", "mirror http://a {\n\tcompare {\n\t\tthreshold 101\n\t}\n}", "invalid threshold '101'"},
		{"compare samples negative", "mirror http://a {\n\tcompare {\n\t\tsamples -1\n\t}\n}", "invalid samples '-1'"},
		{"compare max_body_size bad", "mirror http://a {\n\tcompare {\n\t\tmax_body_size big\n\t}\n}", "invalid max_body_size 'big'"},
		{"compare headers missing", "mirror http://a {\n\tcompare {\n\t\theaders\n\t}\n}", "wrong argument count"},
		{"compare noise_from missing", "mirror http://a {\n\tcompare {\n\t\tnoise_from\n\t}\n}", "wrong argument count"},
		{"concurrency floor zero", "mirror http://a {\n\tconcurrency {\n\t\tfloor 0\n\t}\n}", "invalid floor '0': must be a positive integer, at Testfile:3"},
		{"concurrency ceiling bad", "mirror http://a {\n\tconcurrency {\n\n\t\tceiling lots\n\t}\n}", "invalid ceiling 'lots': must be a positive integer, at Testfile:4"},
		{"concurrency floor missing", "mirror http://a {\n\tconcurrency {\n\t\tfloor\n\t}\n}", "unexpected line ending after 'floor', at Testfile:3"},
		{"concurrency fixed with a value", "mirror http://a {\n\tconcurrency {\n\t\tfixed yes\n\t}\n}", "unexpected line ending after 'yes', at Testfile:3"},
		{"concurrency unknown option", "mirror http://a {\n\tconcurrency {\n\t\tgrowth fast\n\t}\n}", "unrecognized concurrency option 'growth', at Testfile:3"},
		{"concurrency twice", "mirror http://a {\n\tconcurrency\n\tconcurrency\n}", "concurrency already specified, at Testfile:3"},
		{"concurrency outside a target", "mirror {\n\tconcurrency\n}", "'concurrency' applies to a target"},
		{"compare flag with a value", "mirror http://a {\n\tcompare {\n\t\tsamples_include_query yes\n\t}\n}", "wrong argument count"},
		// checked as the Caddyfile is adapted, with the line
		{"a bare mirror", "mirror", "or a 'to <upstreams...>' block inside mirror { }, at Testfile:1"},
		{"an empty mirror block", "mirror {\n}", "mirror needs a shadow: mirror <upstreams...>, or a 'to <upstreams...>' block inside mirror { }, at Testfile:1"},
		{"an upstream that does not parse", "mirror {\n\tto http://[::1\n}", `upstream "http://[::1"`},
		{"an upstream with a path and no scheme", "mirror 127.0.0.1:9001/v2", "upstream"},
		{"a port range that does not parse", "mirror {\n\tto http://a:9-x\n}", "at Testfile:2"},
		{"ws://", "mirror {\n\tto ws://localhost:9001\n}", "scheme must be http, https or h2c, at Testfile:2"},
		{"another scheme", "mirror ftp://a", "scheme must be http, https or h2c, at Testfile:1"},
		{"an upstream with a query", "mirror http://a/?x=1", "a query is not allowed, at Testfile:1"},
		{"floor over ceiling", "mirror http://a {\n\tconcurrency {\n\t\tfloor 50\n\t\tceiling 10\n\t}\n}", "concurrency.floor (50) must not exceed concurrency.ceiling (10), at Testfile:2"},
		{"compare ignore not a pointer", "mirror http://a {\n\tcompare {\n\t\tignore items/x\n\t}\n}", "invalid ignore 'items/x': is not a JSON pointer: it must start with /, at Testfile:3"},
		{"compare headers not a name", "mirror http://a {\n\tcompare {\n\t\theaders \"X Y\"\n\t}\n}", "invalid headers 'X Y': is not a header field name, at Testfile:3"},
		{"compare ignore then a bad body", "mirror http://a {\n\tcompare {\n\t\tignore /a\n\t\tbody xml\n\t}\n}", "invalid body 'xml': must be auto, json, bytes or off, at Testfile:4"},
		{"max_stream_size negative", "mirror http://a {\n\tmax_stream_size -1\n}", "invalid max_stream_size '-1': must be a size such as 1MiB, at Testfile:2"},
		{"match with a named matcher outside a site", "mirror http://a {\n\tmatch @api\n}", "match @api: named matchers are taken only where the mirror directive is parsed as part of a site"},
		{"max_fails 0", "mirror http://a {\n\tmax_fails 0\n}", "invalid max_fails '0': must be -1 (never unhealthy) or at least 1, at Testfile:2"},
		{"max_in_flight 0", "mirror http://a {\n\tmax_in_flight 0\n}", "invalid max_in_flight '0': must be a positive integer, at Testfile:2"},
		{"wait_for_primary not a duration", "mirror http://a {\n\twait_for_primary soon\n}", "invalid wait_for_primary 'soon': must be a duration such as 100ms, or 0 to send each copy at once, at Testfile:2"},
		{"wait_for_primary negative", "mirror http://a {\n\twait_for_primary -1s\n}", "invalid wait_for_primary '-1s'"},
		{"sample_by a literal", "mirror http://a {\n\tsample_by user\n}", "a literal is the same for every request, at Testfile:2"},
		{"header_up with a response placeholder", "mirror http://a {\n\theader_up X-Status {http.response.status}\n}", "{http.response.status} never has a value for a copy, which is made before the primary answers, at Testfile:2"},
		{"header_up with reverse_proxy's placeholder", "mirror http://a {\n\theader_up X-Dur {http.reverse_proxy.upstream.duration}\n}", "is reverse_proxy's own and has no value for a copy; the copy's upstream is {http.reverse_proxy.upstream.hostport} (or .address, .host, .port), at Testfile:2"},
		{"noise_from naming no target", "mirror {\n\tto http://a {\n\t\tcompare {\n\t\t\tnoise_from b\n\t\t}\n\t}\n}", `compare noise_from "b": no target of this mirror is named so, at Testfile:1`},
		{"request_body bad", "mirror http://a {\n\trequest_body maybe\n}", "invalid request_body 'maybe': must be on or off, at Testfile:2"},
		{"lb_policy unknown", "mirror {\n\tto http://a http://b {\n\t\tlb_policy fastest\n\t}\n}", "fastest"},
		{"lb_policy twice", "mirror {\n\tto http://a http://b {\n\t\tlb_policy first\n\t\tlb_policy first\n\t}\n}", "lb_policy already specified, at Testfile:4"},
		{"dynamic unknown", "mirror {\n\tto {\n\t\tdynamic zookeeper\n\t}\n}", "zookeeper"},
		{"dynamic twice", "mirror {\n\tto {\n\t\tdynamic a s 80\n\t\tdynamic a s 80\n\t}\n}", "dynamic upstreams already specified, at Testfile:4"},
		{"unhealthy_status out of range", "mirror http://a {\n\tunhealthy_status 503 700\n}", "invalid unhealthy_status '700': must be a status code (100 to 599) or a class (5xx), at Testfile:2"},
		{"unhealthy_status not a code", "mirror http://a {\n\tunhealthy_status busy\n}", "invalid unhealthy_status 'busy'"},
		{"unhealthy_status without codes", "mirror http://a {\n\tunhealthy_status\n}", "wrong argument count"},
		{"unhealthy_latency bad", "mirror http://a {\n\tunhealthy_latency -1s\n}", "invalid unhealthy_latency '-1s': must be a non-negative duration, at Testfile:2"},
		{"health_interval bad", "mirror http://a {\n\thealth_interval soon\n}", "bad interval value soon: time: invalid duration \"soon\", at Testfile:2"},
		{"health checks on dynamic upstreams", "mirror {\n\tto {\n\t\tdynamic a s 80\n\t\thealth_uri /h\n\t}\n}", "health_checks.active: reverse_proxy checks static upstreams only, not dynamic ones, at Testfile:1"},
		{"max_wait bad", "mirror http://a {\n\tconcurrency {\n\t\tmax_wait soon\n\t}\n}", "invalid max_wait 'soon': must be a non-negative duration (0: never wait), at Testfile:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile(%q) = nil error, want one containing %q", tc.input, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("UnmarshalCaddyfile(%q) error = %q, want it to contain %q", tc.input, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("UnmarshalCaddyfile(%q) error = %q, want it to name the line", tc.input, err)
			}
		})
	}
}

// normalizeJSON re-encodes a JSON document so that two equal documents
// compare equal as strings.
func normalizeJSON(t testing.TB, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", s, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestCaddyfileTargetNamedMatcher: a target's match takes a named matcher
// of its site, as a route does.
func TestCaddyfileTargetNamedMatcher(t *testing.T) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`:8080 {
	@api path /api/*
	mirror {
		to http://shadow {
			match @api
		}
	}
	respond ok
}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"match":[{"path":["/api/*"]}]`) {
		t.Errorf("adapted config does not give the target the @api matcher:\n%s", out)
	}
}
