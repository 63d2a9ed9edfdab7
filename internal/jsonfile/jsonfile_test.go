package jsonfile

import (
	"errors"
	"testing"
)

func TestDecodeRefusesWhatItWouldOtherwiseIgnore(t *testing.T) {
	type config struct {
		Mode string `json:"mode"`
	}
	for _, tt := range []struct {
		name, in string
		ok       bool
		trailing bool
	}{
		{"one object with known fields", `{"mode":"cover"}`, true, false},
		{"whitespace after the object", "{\"mode\":\"cover\"}\n\t ", true, false},
		{"an unknown field", `{"mod":"cover"}`, false, false},
		{"a second object after the first", `{"mode":"cover"} {"mode":"bogus"}`, false, true},
		{"garbage after the object", `{"mode":"cover"} trailing garbage`, false, true},
		{"nothing", ``, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c config
			err := Decode([]byte(tt.in), &c)
			if (err == nil) != tt.ok || errors.Is(err, ErrTrailing) != tt.trailing {
				t.Fatalf("Decode(%q) = %v, want ok %v, trailing %v", tt.in, err, tt.ok, tt.trailing)
			}
		})
	}
}
