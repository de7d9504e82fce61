package inbox_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify/inbox"
)

// benchSub is a subscription of the sizes browsers give: an FCM endpoint of about 190
// bytes, a p256dh of 87 characters, an auth of 22.
func benchSub(user string, i int) inbox.Subscription {
	return inbox.Subscription{
		ID: fmt.Sprintf("%024x", i), User: user, CreatedAt: time.Now(),
		Endpoint: fmt.Sprintf("https://fcm.googleapis.com/fcm/send/%022d:APA91b%s", i, strings.Repeat("x", 134)),
		P256dh:   "B" + strings.Repeat("p", 86), Auth: strings.Repeat("a", 22),
	}
}

// BenchmarkMemorySubscriptionBytes reports the heap a MemoryStore holds per stored
// subscription (10,000 users with one each, then 1,000 users with ten each).
//
//	go test -run '^$' -bench MemorySubscriptionBytes ./inbox/
func BenchmarkMemorySubscriptionBytes(b *testing.B) {
	for _, per := range []int{1, 10} {
		b.Run(fmt.Sprint("per-user=", per), func(b *testing.B) {
			const total = 10_000
			var bytes float64
			for range b.N {
				subs := make([]inbox.Subscription, total)
				for i := range subs {
					subs[i] = benchSub(fmt.Sprint("user", i/per), i)
				}
				ctx := context.Background()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := inbox.NewMemoryStore()
				for _, sub := range subs {
					if _, _, err := s.AddSubscription(ctx, sub, 10); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(s)
				// The strings were made before: what the store adds is its maps, slices and
				// Subscription structs; add the strings' own bytes, which it keeps.
				strs := 0
				for _, sub := range subs {
					strs += len(sub.ID) + len(sub.User)/per + len(sub.Endpoint) + len(sub.P256dh) + len(sub.Auth)
				}
				bytes = (float64(after.HeapAlloc) - float64(before.HeapAlloc) + float64(strs)) / total
			}
			b.ReportMetric(bytes, "bytes/subscription")
			b.ReportMetric(0, "ns/op")
		})
	}
}
