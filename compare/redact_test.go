package compare

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRedaction(t *testing.T) {
	r := newRedaction([]string{"/user/email", "/cards/*/number", "/secret", "x-session"})
	for _, tc := range []struct {
		d    difference
		want bool
	}{
		{difference{Field: "/user/email", Pointer: "/user/email"}, true},
		{difference{Field: "/cards/*/number", Pointer: "/cards/3/number"}, true},
		{difference{Field: "/secret/inner/key", Pointer: "/secret/inner/key"}, true}, // under a redacted pointer
		{difference{Field: "/user/name", Pointer: "/user/name"}, false},
		{difference{Field: "header X-Session"}, true},
		{difference{Field: "header X-Other"}, false},
		{difference{Field: "status"}, false},
	} {
		if got := r.names(&tc.d); got != tc.want {
			t.Errorf("redacts(%+v) = %v, want %v", tc.d, got, tc.want)
		}
	}
}

// TestRedaction_Samples checks that kept samples hold no redacted value,
// nor a credential header's, while the fields are still compared.
func TestRedaction_Samples(t *testing.T) {
	c := newTestComparer(t, "redaction", &Config{Redact: []string{"/email", "X-Token"}, Headers: []string{"X-Token", "Set-Cookie"}})
	primary := capturedJSON([]byte(`{"email":"ada@example.com","name":"Ada"}`))
	primary.header.Set("X-Token", "primary-token")
	primary.header.Set("Set-Cookie", "session=primary-cookie")
	shadow := capturedJSON([]byte(`{"email":"grace@example.com","name":"Grace"}`))
	shadow.header.Set("X-Token", "shadow-token")
	shadow.header.Set("Set-Cookie", "session=shadow-cookie")
	rec := c.judge(exchangeOf(http.MethodGet, "/me"), primary, shadow, nil)
	if rec.result != mismatch || len(rec.verdicts) != 4 {
		t.Fatalf("result %v with %d differences, want a mismatch in 4 fields: %+v", rec.result, len(rec.verdicts), rec.verdicts)
	}
	kept := fmt.Sprintf("%+v", c.report.snapshot("redaction").Samples)
	for _, secret := range []string{"ada@", "grace@", "primary-token", "shadow-token", "cookie"} {
		if strings.Contains(kept, secret) {
			t.Errorf("the samples hold %q: %s", secret, kept)
		}
	}
	if !strings.Contains(kept, "Grace") {
		t.Errorf("the samples lack the unredacted /name: %s", kept)
	}
}
