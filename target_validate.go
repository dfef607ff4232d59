package mirror

import (
	"fmt"
	"math"
	"time"
)

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
	if err := checkUnhealthyRules(t.UnhealthyStatus, t.UnhealthyLatency); err != nil {
		return err
	}
	if err := t.checkHealthChecks(); err != nil {
		return err
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
