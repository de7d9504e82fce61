package notify

import "testing"

func TestBatchBuffers(t *testing.T) {
	for _, tc := range []struct{ size, class int }{
		{1, 0}, {1 << 10, 0}, {1<<10 + 1, 1}, {2 << 10, 1}, {16 << 10, 4}, {16<<10 + 1, 5},
		{64 << 10, 6}, {maxBatchBytes, 8},
	} {
		if got := batchClass(tc.size); got != tc.class {
			t.Errorf("batchClass(%d) = %d, want %d", tc.size, got, tc.class)
		}
		bp := getBatch(tc.size)
		if len(*bp) != 0 || cap(*bp) < tc.size {
			t.Fatalf("getBatch(%d): len %d cap %d", tc.size, len(*bp), cap(*bp))
		}
		*bp = append(*bp, make([]byte, tc.size)...)
		putBatch(bp)
		// Whatever the pool hands back for this size is empty and large enough.
		if again := getBatch(tc.size); len(*again) != 0 || cap(*again) < tc.size {
			t.Fatalf("after put, getBatch(%d): len %d cap %d", tc.size, len(*again), cap(*again))
		}
	}
}
