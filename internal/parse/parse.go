// Package parse reads the numbers and sizes of the Caddyfile's
// subdirectives, for the mirror and its comparison alike.
package parse

import (
	"fmt"
	"math"
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// OneArg reads a subdirective's single argument, failing with the
// dispenser's argument error (which names the line) when there is none
// or more than one.
func OneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// Finite parses a decimal number as strconv.ParseFloat does, but refuses
// NaN and the infinities, which ParseFloat accepts and which no range
// check catches (every comparison with NaN is false).
func Finite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a finite number", s)
	}
	return f, nil
}

// Size parses a size as request_body does (4MB is 4,000,000 bytes, 4MiB
// is 4,194,304).
func Size(s string) (int64, error) {
	size, err := humanize.ParseBytes(s)
	if err != nil || size > 1<<62 {
		return 0, fmt.Errorf("must be a size such as 1MiB")
	}
	return int64(size), nil
}
