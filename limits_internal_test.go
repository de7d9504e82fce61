package notify

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at        time.Duration // since t0
		ok, abuse bool
	}
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{name: "burst then refused", rate: 1, burst: 2, steps: []step{
			{0, true, false}, {0, true, false}, {0, false, false}}},
		{name: "refill at the rate", rate: 2, burst: 1, steps: []step{
			{0, true, false}, {100 * time.Millisecond, false, false}, {500 * time.Millisecond, true, false}}},
		{name: "refill capped at the burst", rate: 10, burst: 2, steps: []step{
			{0, true, false}, {time.Hour, true, false}, {time.Hour, true, false}, {time.Hour, false, false}}},
		{name: "excess past the burst closes", rate: 1, burst: 1, steps: []step{
			{0, true, false}, {0, false, false}, {0, false, true}}},
		{name: "excess drains one a second", rate: 0.001, burst: 2, steps: []step{
			{0, true, false}, {0, true, false}, {0, false, false}, {0, false, false},
			{2 * time.Second, false, false}, {2 * time.Second, false, false}, {2 * time.Second, false, true}}},
		{name: "a clock going back refills nothing", rate: 1, burst: 1, steps: []step{
			{time.Second, true, false}, {0, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bucket
			for i, s := range tc.steps {
				ok, abuse := b.allow(t0.Add(s.at), tc.rate, tc.burst)
				if ok != s.ok || abuse != s.abuse {
					t.Fatalf("step %d at %v: ok %v abuse %v, want %v %v", i, s.at, ok, abuse, s.ok, s.abuse)
				}
			}
		})
	}
}

func TestAdmission(t *testing.T) {
	a := admission{maxTotal: 3, maxUser: 2}
	for _, tc := range []struct{ user, want string }{
		{"alice", ""}, {"alice", ""}, {"alice", refusedUserSessions}, {"bob", ""}, {"carol", refusedHubSessions},
	} {
		if got := a.enter(tc.user); got != tc.want {
			t.Fatalf("enter(%s) = %q, want %q", tc.user, got, tc.want)
		}
	}
	a.leave("alice")
	if got := a.enter("carol"); got != "" {
		t.Fatalf("enter after a leave = %q", got)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		a.leave(u)
	}
	if a.total != 0 || len(a.users) != 0 {
		t.Fatalf("after every leave: total %d, users %v", a.total, a.users)
	}
}

// BenchmarkBucketAllow is the rate limiter's cost per client message.
func BenchmarkBucketAllow(b *testing.B) {
	var bk bucket
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		bk.allow(now.Add(time.Duration(i)*time.Millisecond), 1000, 100)
	}
}

// BenchmarkCountersSend is what the counters add to a send: the call count, a clock read
// and the histogram.
func BenchmarkCountersSend(b *testing.B) {
	var m counters
	for b.Loop() {
		m.sends.Add(1)
		start := time.Now()
		m.observeSend(time.Since(start))
	}
}
