// Package tools pins the developer tools the project runs with `go tool`,
// kept apart so that they do not become dependencies of the plugin:
//
//	cd tools && go tool xcaddy build v2.11.9 --with github.com/caddy-mirror/mirror=..
package tools
