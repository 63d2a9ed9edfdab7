// Package jsonfile decodes the operator's JSON files (config.json,
// genesis.json, validator set files) strictly: a field the type does not
// have, or anything after the one JSON value, is an error, so a typo or a
// stray paste is refused rather than ignored.
package jsonfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailing is returned for text after the JSON value.
var ErrTrailing = errors.New("text after the JSON value")

// Decode decodes b, one JSON value whose fields v all has, into v.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailing
	}
	return nil
}
