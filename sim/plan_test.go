package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func planResult(t *testing.T, cfg PlanConfig) Result {
	t.Helper()
	res, err := RunPlan(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Strategies) != len(cfg.Strategies) && cfg.Strategies != nil {
		t.Fatalf("%d strategy results for %d strategies", len(res.Strategies), len(cfg.Strategies))
	}
	return res
}

func byName(t *testing.T, res Result, name string) StrategyResult {
	t.Helper()
	for _, s := range res.Strategies {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no result for strategy %q", name)
	return StrategyResult{}
}

func TestPlanHealthyCoverReachesEveryoneWithNMinusOneMessages(t *testing.T) {
	for _, n := range []int{2, 3, 8, 24, 27, 100, 1000} {
		res := planResult(t, PlanConfig{Validators: n, Broadcasts: 10, Seed: 7, Strategies: mustParseStrategies([]string{"cover", "cover+ack"})})
		for _, s := range res.Strategies {
			if ratioOf(t, s) != 1 || s.PayloadMessagesPerBroadcast != float64(n-1) || s.DuplicatesPerNode != 0 {
				t.Errorf("n=%d %s: ratio %v, %v messages, %v duplicates; want 1, %d, 0",
					n, s.Name, ratioOf(t, s), s.PayloadMessagesPerBroadcast, s.DuplicatesPerNode, n-1)
			}
		}
	}
}

// ratioOf is s's delivery ratio; it fails the test when there is none.
func ratioOf(t *testing.T, s StrategyResult) float64 {
	t.Helper()
	if s.DeliveryRatio == nil {
		t.Fatalf("%s: delivery ratio is nil", s.Name)
	}
	return *s.DeliveryRatio
}

// A single validator has nothing to reach: the ratios are null, not 1.
func TestPlanSingleValidatorHasNoDeliveryRatio(t *testing.T) {
	res := planResult(t, PlanConfig{Validators: 1, Broadcasts: 3, Seed: 7})
	for _, s := range res.Strategies {
		if s.DeliveryRatio != nil || s.ValidatorDeliveryRatio != nil || s.Targets != 0 {
			t.Errorf("%s: delivery ratio %v, validator ratio %v, %d targets; want nil, nil, 0",
				s.Name, s.DeliveryRatio, s.ValidatorDeliveryRatio, s.Targets)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"delivery_ratio":null`) {
		t.Errorf("JSON lacks a null delivery_ratio: %s", b)
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table.String(), "100.00%") || strings.Contains(table.String(), "%!") {
		t.Errorf("table shows a ratio for no targets:\n%s", table.String())
	}
}

func TestPlanNegativeMaxRetriesNamesTheFlag(t *testing.T) {
	_, err := RunPlan(context.Background(), PlanConfig{Validators: 8, Broadcasts: 1, MaxRetries: -1}, nil)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "--max-retries") || strings.Contains(err.Error(), "MaxRetries") {
		t.Errorf("error = %v, want ErrBadConfig naming --max-retries", err)
	}
}

func TestPlanReferenceHasHoles(t *testing.T) {
	for _, n := range []int{8, 24} {
		s := byName(t, planResult(t, PlanConfig{Validators: n, Broadcasts: 20, Seed: 1}), "reference")
		if ratioOf(t, s) >= 1 {
			t.Errorf("n=%d: reference delivery ratio %v, want < 1", n, ratioOf(t, s))
		}
	}
}

func TestPlanCoverWithACKCoversEveryLiveValidatorAroundDownOnes(t *testing.T) {
	res := planResult(t, PlanConfig{Validators: 500, DownValidators: 100, Broadcasts: 30, Seed: 3})
	if s := byName(t, res, "cover+ack"); ratioOf(t, s) != 1 {
		t.Errorf("cover+ack with 20%% down: ratio %v, want 1", ratioOf(t, s))
	}
	if s := byName(t, res, "cover"); ratioOf(t, s) >= 1 {
		t.Errorf("cover without ACK with 20%% down: ratio %v, want < 1", ratioOf(t, s))
	}
}

func TestPlanSilentValidatorsAreReceiversButCutTheirSubtrees(t *testing.T) {
	s := byName(t, planResult(t, PlanConfig{Validators: 300, SilentValidators: 60, Broadcasts: 20, Seed: 5}), "cover+ack")
	if ratioOf(t, s) >= 1 || ratioOf(t, s) <= 0 {
		t.Errorf("cover+ack with 20%% silent: ratio %v, want in (0, 1)", ratioOf(t, s))
	}
}

func TestPlanIsDeterministicForASeed(t *testing.T) {
	cfg := PlanConfig{Validators: 2000, DownValidators: 200, SilentValidators: 100, Broadcasts: 16, Seed: 11}
	a, b := planResult(t, cfg), planResult(t, PlanConfig{Validators: 2000, DownValidators: 200, SilentValidators: 100, Broadcasts: 16, Seed: 11, Workers: 1})
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("same seed, different results:\n%s\n%s", ja, jb)
	}
}

func TestPlanHundredThousandValidatorsIsQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	start := time.Now()
	res := planResult(t, PlanConfig{Validators: 100_000, DownValidators: 1000, Broadcasts: 8, Seed: 1})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("10^5 validators took %v", d)
	}
	if s := byName(t, res, "cover+ack"); ratioOf(t, s) != 1 || s.LastDeliveryHop.Max > 11 {
		t.Errorf("cover+ack at 10^5: %+v", s)
	}
}

func TestPlanJSONHasNullsForNetworkOnlyFields(t *testing.T) {
	res := planResult(t, PlanConfig{Validators: 27, Broadcasts: 3, Strategies: mustParseStrategies([]string{"cover"})})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mode       string
		Strategies []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	s := got.Strategies[0]
	for _, k := range []string{"fullnode_delivery_ratio", "payload_bytes_per_broadcast", "coverage_ms", "validator_coverage_ms"} {
		if string(s[k]) != "null" {
			t.Errorf("%s = %s, want null", k, s[k])
		}
	}
	for _, k := range []string{"name", "delivery_ratio", "validator_delivery_ratio", "payload_messages_per_broadcast", "duplicates_per_node", "last_delivery_hop"} {
		if v, ok := s[k]; !ok || string(v) == "null" {
			t.Errorf("%s = %s, want a value", k, v)
		}
	}
}

func TestPlanRejectsBadInput(t *testing.T) {
	tests := map[string]PlanConfig{
		"no validators":             {Validators: 0, Broadcasts: 1},
		"negative down":             {Validators: 10, DownValidators: -1, Broadcasts: 1},
		"down plus silent too many": {Validators: 10, DownValidators: 6, SilentValidators: 5, Broadcasts: 1},
		"all down":                  {Validators: 10, DownValidators: 10, Broadcasts: 1},
		"no broadcasts":             {Validators: 10},
		"gossip strategy":           {Validators: 10, Broadcasts: 1, Strategies: mustParseStrategies([]string{"cover+gossipsub"})},
		"too many validators":       {Validators: MaxPlanValidators + 1, Broadcasts: 1},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := RunPlan(context.Background(), cfg, nil); !errors.Is(err, ErrBadConfig) {
				t.Errorf("error = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestPlanStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunPlan(ctx, PlanConfig{Validators: 1000, Broadcasts: 100}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestReportIsSelfContainedHTML(t *testing.T) {
	res := planResult(t, PlanConfig{Validators: 30, Broadcasts: 4})
	res.Mode = ModeNetwork // exercise the curves with synthetic data
	for i := range res.Strategies {
		res.Strategies[i].Curve = []time.Duration{time.Millisecond, 3 * time.Millisecond, 8 * time.Millisecond}
		res.Strategies[i].Targets = 4
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, res); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"<svg", "<polyline", "cover+ack", "</html>"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("report contains %q; it must load nothing", banned)
		}
	}
}

// The peers a validator sends RainTree payload to: every validator has the
// same targets over all origins when nobody is down, and re-delegation
// around down validators adds a few, never removes any.
func TestPlanCountsRainTreePeersPerValidator(t *testing.T) {
	healthy := planResult(t, PlanConfig{Validators: 1000, Broadcasts: 5, Seed: 3,
		Strategies: mustParseStrategies([]string{"cover", "reference"})})
	for name, want := range map[string]int{"cover": 20, "reference": 14} {
		got := byName(t, healthy, name).RainTreePeersPerValidator
		if got == nil || got.Mean != float64(want) || got.Max != want {
			t.Errorf("healthy %s: peers per validator %+v, want mean and max %d", name, got, want)
		}
	}
	faulty := planResult(t, PlanConfig{Validators: 1000, DownValidators: 100, Broadcasts: 20, Seed: 3,
		Strategies: mustParseStrategies([]string{"cover+ack"})})
	got := byName(t, faulty, "cover+ack").RainTreePeersPerValidator
	if got == nil || got.Mean <= 20 || got.Max <= 20 || got.Mean > float64(got.Max) {
		t.Errorf("10%% down with ACKs: peers per validator %+v, want re-delegations above the 20 neighbours", got)
	}
}
