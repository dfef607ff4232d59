package mirror

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// captureLogs points h's loggers at a buffer, at debug level, and returns it.
func captureLogs(h *Handler) *bytes.Buffer {
	buf := new(bytes.Buffer)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(buf)), zapcore.DebugLevel)
	h.logger = zap.New(core)
	for _, t := range h.Targets {
		t.sampledLogger = h.logger
	}
	return buf
}

func TestCredentialsAreNeverLogged(t *testing.T) {
	secrets := map[string]string{
		"Authorization":       "Bearer secret-token-1",
		"Cookie":              "session=secret-cookie-2",
		"Proxy-Authorization": "Basic secret-proxy-3",
	}
	// values that the config injects from the environment, in headers that
	// no redaction list knows
	t.Setenv("MIRROR_TEST_API_KEY", "KEY-abc-999")
	t.Setenv("MIRROR_TEST_TENANT", "tenant-secret-5")
	t.Setenv("MIRROR_TEST_REPLACED", "replaced-secret-6")
	headerUp := `"headers":{"set":{"x-api-key":["{env.MIRROR_TEST_API_KEY}"]},"add":{"X-Tenant":["{env.MIRROR_TEST_TENANT}"]},"replace":{"X-Client-Note":[{"search":"public","replace":"{env.MIRROR_TEST_REPLACED}"}]}}`
	injected := []string{"KEY-abc-999", "tenant-secret-5", "replaced-secret-6"}

	seen := make(chan http.Header, 1)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "secret-set-cookie-4"})
	}))
	defer ok.Close()
	refusedURL := "http://" + closedAddr(t)

	rec := recordOutcomes(t)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,%s},{"upstream":%q,%s}]}`, ok.URL, headerUp, refusedURL, headerUp))
	logs := captureLogs(h)
	front := serveThrough(t, h, checksumPrimary)

	req, _ := http.NewRequest(http.MethodPost, front.URL+"/login", strings.NewReader("user=a"))
	for k, v := range secrets {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Client-Note", "public-visible-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := counts(rec.wait(t, 2))
	if got["mirrored"] != 1 || got["failed"] != 1 {
		t.Fatalf("outcomes = %v, want one mirrored (logged at debug) and one failed (logged at warn)", got)
	}
	_ = h.Cleanup()

	// the edits did reach the shadow: the test would see a leak
	atShadow := receive(t, seen, "the copy's headers")
	for name, want := range map[string]string{"X-Api-Key": "KEY-abc-999", "X-Tenant": "tenant-secret-5", "X-Client-Note": "replaced-secret-6-visible-7"} {
		if atShadow.Get(name) != want {
			t.Errorf("shadow got %s = %q, want %q", name, atShadow.Get(name), want)
		}
	}

	out := logs.String()
	if !strings.Contains(out, "mirrored request") || !strings.Contains(out, "mirror request failed") {
		t.Fatalf("expected both log lines, got:\n%s", out)
	}
	if !strings.Contains(out, "User-Agent") {
		t.Errorf("the client's own headers are not logged:\n%s", out)
	}
	leaks := append([]string{"secret-set-cookie-4", secrets["Authorization"], secrets["Cookie"], secrets["Proxy-Authorization"]}, injected...)
	for _, secret := range leaks {
		if strings.Contains(out, secret) {
			t.Errorf("a credential was logged: %q in\n%s", secret, out)
		}
	}
}

func TestRequestCannotRedirectACopy(t *testing.T) {
	rec := recordOutcomes(t)
	shadow := newBackend(t, http.StatusOK, "shadow")
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q}]}`, shadow.URL+"/mirror"))
	front := serveThrough(t, h, checksumPrimary)

	// An absolute-form request URI naming another host, and a Host header
	// naming a third: neither may choose where the copy goes.
	rawRequest(t, front.URL, "GET http://evil.example:6666/steal?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")

	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Fatalf("outcome = %v, want mirrored to the configured shadow", o.outcome)
	}
	got := receive(t, shadow.seen, "the copy at the configured shadow")
	if got.requestURI != "/mirror/steal?x=1" {
		t.Errorf("copy URI = %q, want the configured prefix and the request's path", got.requestURI)
	}
}

func TestTLSVerificationIsOnByDefault(t *testing.T) {
	shadow := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer shadow.Close()
	for _, tc := range []struct {
		name      string
		transport string
		want      outcome
	}{
		{"default transport", "", failed},
		{"tls_insecure_skip_verify", `,"transport":{"protocol":"http","tls":{"insecure_skip_verify":true}}`, mirrored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOutcomes(t)
			h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q%s}]}`, shadow.URL, tc.transport))
			front := serveThrough(t, h, checksumPrimary)
			post(t, front.URL)
			if o := rec.wait(t, 1)[0]; o.outcome != tc.want {
				t.Errorf("outcome with an untrusted certificate = %v, want %v", o.outcome, tc.want)
			}
		})
	}
}
