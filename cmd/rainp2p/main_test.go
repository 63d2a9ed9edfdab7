package main

import (
	"testing"

	"go.uber.org/goleak"
)

// The commands run whole networks in-process (sim); none may leave a
// goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
