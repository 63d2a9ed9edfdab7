package dedup

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestDeduper(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		feed     []uint64
		want     []bool
	}{
		{"a new nonce is delivered", 4, []uint64{1}, []bool{true}},
		{"a repeat is suppressed", 4, []uint64{1, 1}, []bool{true, false}},
		{"distinct nonces all pass", 4, []uint64{1, 2, 3}, []bool{true, true, true}},
		{"the oldest nonce is forgotten past capacity", 2, []uint64{1, 2, 3, 1}, []bool{true, true, true, true}},
		{"a recent nonce is still remembered past capacity", 2, []uint64{1, 2, 3, 3, 2}, []bool{true, true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.capacity)
			if err != nil {
				t.Fatal(err)
			}
			dups := 0
			for i, n := range tt.feed {
				if got := d.FirstTime(n); got != tt.want[i] {
					t.Fatalf("step %d nonce %d: got %v want %v", i, n, got, tt.want[i])
				}
				if !tt.want[i] {
					dups++
				}
			}
			if d.Duplicates() != uint64(dups) || d.Len() > tt.capacity {
				t.Fatalf("duplicates %d (want %d), len %d", d.Duplicates(), dups, d.Len())
			}
		})
	}
	if _, err := New(0); err != ErrBadCapacity {
		t.Fatalf("New(0): %v", err)
	}
}

func TestConcurrentDeliveryPassesEachNonceOnce(t *testing.T) {
	d, _ := New(DefaultCapacity)
	const nonces, workers = 5000, 8
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range uint64(nonces) {
				if d.FirstTime(n + 1) {
					passed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if passed.Load() != nonces || d.Duplicates() != nonces*(workers-1) {
		t.Fatalf("passed %d (want %d), duplicates %d", passed.Load(), nonces, d.Duplicates())
	}
}

func BenchmarkFirstTime(b *testing.B) {
	d, _ := New(DefaultCapacity)
	var n uint64
	for b.Loop() {
		n++
		d.FirstTime(n)
	}
}
