package sim

import (
	"errors"
	"testing"
)

func TestParseStrategy(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "cover", want: "cover"},
		{in: " Reference ", want: "reference"},
		{in: "gossipsub+cover", want: "cover+gossipsub"},
		{in: "ack+cover+floodsub", want: "cover+ack+floodsub"},
		{in: "randomsub", want: "randomsub"},
		{in: "lazy+gossipsub+ack+cover", want: "cover+ack+gossipsub+lazy"},
		{in: "gossipsub+lazy", bad: true},
		{in: "repair+lazy+gossipsub+ack+cover", want: "cover+ack+gossipsub+lazy+repair"},
		{in: "cover+ack+gossipsub+repair", bad: true},
		{in: "ternary+cover+ack", want: "cover+ack+ternary"},
		{in: "reference+ternary", bad: true},
		{in: "cover+floodsub+lazy", bad: true},
		{in: "reference+ack", bad: true},
		{in: "ack", bad: true},
		{in: "cover+reference", bad: true},
		{in: "gossipsub+floodsub", bad: true},
		{in: "plumtree", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseStrategy(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrBadConfig) {
					t.Fatalf("ParseStrategy(%q) = %+v, %v; want ErrBadConfig", tt.in, s, err)
				}
				return
			}
			if err != nil || s.Name() != tt.want {
				t.Fatalf("ParseStrategy(%q) = %q, %v; want %q", tt.in, s.Name(), err, tt.want)
			}
		})
	}
}

func TestParseStrategiesRejectsDuplicatesAndEmptyLists(t *testing.T) {
	for _, in := range []string{"cover,cover", "cover+gossipsub,gossipsub+cover", "", " , "} {
		if _, err := ParseStrategies(in); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseStrategies(%q) error = %v, want ErrBadConfig", in, err)
		}
	}
}

func TestDefaultStrategyListsParse(t *testing.T) {
	for _, list := range [][]string{NetworkStrategies, PlanStrategies} {
		if got := mustParseStrategies(list); len(got) != len(list) {
			t.Errorf("%v parsed to %d strategies", list, len(got))
		}
	}
}
