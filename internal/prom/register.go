// Package prom registers Prometheus collectors in a config's registry the
// way every mirror handler of the config shares them.
package prom

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c in reg, returning the collector already registered
// there under the same description if there is one: the handlers of one
// config share their collectors, since the registry is per config. A nil
// reg leaves c unregistered.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
