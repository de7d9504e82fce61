package inbox

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(2, 3, func() time.Time { return now }) // 2 per second, 3 deep
	for i := range 3 {
		if ok, _ := l.allow("alice"); !ok {
			t.Fatalf("request %d of a full bucket refused", i+1)
		}
	}
	ok, retry := l.allow("alice")
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("4th request at once: ok=%v retry=%v, want refused, 500ms", ok, retry)
	}
	if ok, _ := l.allow("bob"); !ok {
		t.Fatal("another user's first request refused: the buckets are per user")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow("alice"); !ok {
		t.Fatal("refused after the token it was told to wait for")
	}
	if ok, _ := l.allow("alice"); ok {
		t.Fatal("a second token out of half a second at 2/s")
	}
	// Once every bucket has had time to fill, the sweep forgets them all.
	now = now.Add(2 * time.Second)
	l.allow("carol")
	if n := l.size(); n != 1 {
		t.Fatalf("after the buckets filled up again, %d users kept, want 1 (carol)", n)
	}
}
