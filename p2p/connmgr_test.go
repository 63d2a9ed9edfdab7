package p2p_test

import (
	"errors"
	"testing"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

func TestConnManagerConfigIsValidated(t *testing.T) {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		tweak func(*p2p.ConnManagerConfig)
		ok    bool
	}{
		{"the defaults are accepted", func(*p2p.ConnManagerConfig) {}, true},
		{"a zero low water is refused", func(c *p2p.ConnManagerConfig) { c.LowWater = 0 }, false},
		{"high water below low water is refused", func(c *p2p.ConnManagerConfig) { c.HighWater = c.LowWater - 1 }, false},
		{"a negative grace period is refused", func(c *p2p.ConnManagerConfig) { c.GracePeriod = -1 }, false},
		{"a zero silence period is refused", func(c *p2p.ConnManagerConfig) { c.SilencePeriod = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p2p.DefaultConfig()
			cfg.Key, cfg.Validators = k, validators.StaticProvider{}
			tt.tweak(&cfg.ConnManager)
			err := cfg.Validate()
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, p2p.ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			cm, err := p2p.NewConnManager(cfg.ConnManager)
			if tt.ok != (err == nil) {
				t.Fatalf("NewConnManager: %v, want ok=%v", err, tt.ok)
			}
			if cm != nil {
				if info := cm.GetInfo(); info.LowWater != cfg.ConnManager.LowWater || info.HighWater != cfg.ConnManager.HighWater {
					t.Errorf("connection manager runs %d/%d, configured %d/%d", info.LowWater, info.HighWater,
						cfg.ConnManager.LowWater, cfg.ConnManager.HighWater)
				}
				_ = cm.Close()
			}
		})
	}
}
