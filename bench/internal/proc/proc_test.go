package proc

import (
	"runtime"
	"testing"
	"time"
)

func TestCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before, ok := CPU("self")
	if !ok {
		t.Fatal("CPU(self): /proc/self/stat not read")
	}
	// Spin until the process has spent at least 50 ms more: CPU must see it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		x := 0
		for i := range 1_000_000 {
			x += i
		}
		_ = x
		now, ok := CPU("self")
		if ok && now-before >= 50*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU(self) went from %v to %v in 10 s of spinning", before, now)
		}
	}
}

func TestCPUNoProcess(t *testing.T) {
	if _, ok := CPU("not-a-pid"); ok {
		t.Fatal("CPU of a process that does not exist: ok")
	}
}
