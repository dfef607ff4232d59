// Command caddy is the standard Caddy command with the mirror handler
// plugged in: what `xcaddy build --with github.com/caddy-mirror/mirror`
// produces, runnable from a checkout with `go run ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy's standard modules and the mirror handler
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-mirror/mirror"
)

func main() {
	caddycmd.Main()
}
