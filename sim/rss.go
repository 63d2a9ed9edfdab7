package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
)

// resetPeakRSS returns freed memory to the system and resets the
// process's peak resident set size (VmHWM) to the current one, so the
// next strategy's peak is its own. Without /proc it does nothing.
func resetPeakRSS() {
	debug.FreeOSMemory()
	// 5 resets the peak RSS (proc(5), /proc/pid/clear_refs).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads VmHWM from /proc/self/status, or nil if it cannot.
func peakRSS() *int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "VmHWM:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return nil
			}
			return ptr(kb * 1024)
		}
	}
	return nil
}

// writeHeapProfile writes a heap profile of live objects to path, a
// goroutine profile to path.goroutine, and goroutine and stack figures to
// path.txt.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	g, err := os.Create(path + ".goroutine")
	if err != nil {
		return fmt.Errorf("goroutine profile: %w", err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(g, 0); err != nil {
		_ = g.Close()
		return fmt.Errorf("goroutine profile: %w", err)
	}
	if err := g.Close(); err != nil {
		return err
	}
	// What the heap profile leaves out: stacks, and the runtime's view.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	summary := fmt.Sprintf("goroutines %d\nheap_inuse_bytes %d\nstack_inuse_bytes %d\nsys_bytes %d\n",
		runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, ms.Sys)
	return os.WriteFile(path+".txt", []byte(summary), 0o644)
}
