package pginbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/inbox"
)

// BenchmarkSubscriptionBytes stores 10,000 subscriptions of the sizes browsers give (an FCM
// endpoint of about 190 bytes, a p256dh of 87 characters, an auth of 22) and reports the
// bytes of a row (pg_column_size) and the table's bytes per row, its primary key index
// included (pg_total_relation_size).
//
//	go test -run '^$' -bench SubscriptionBytes -benchtime 1x ./adapters/pginbox/
func BenchmarkSubscriptionBytes(b *testing.B) {
	for range b.N {
		name := schema(b, postgresURL(b))
		s := newStore(b, pginbox.Options{Schema: name})
		ctx := context.Background()
		const total = 10_000
		for i := range total {
			sub := inbox.Subscription{
				ID: fmt.Sprintf("%024x", i), User: fmt.Sprint("user", i), CreatedAt: time.Now(),
				Endpoint: fmt.Sprintf("https://fcm.googleapis.com/fcm/send/%022d:APA91b%s", i, strings.Repeat("x", 134)),
				P256dh:   "B" + strings.Repeat("p", 86), Auth: strings.Repeat("a", 22),
			}
			if _, _, err := s.AddSubscription(ctx, sub, 10); err != nil {
				b.Fatal(err)
			}
		}
		var row, total_ float64
		table := name + ".notify_inbox_push_subscriptions"
		err := s.Pool().QueryRow(ctx, `SELECT avg(pg_column_size(t.*)), pg_total_relation_size('`+table+`')::float8 / count(*) FROM `+table+` t`).Scan(&row, &total_)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(row, "row-bytes")
		b.ReportMetric(total_, "table+index-bytes/row")
		b.ReportMetric(0, "ns/op")
	}
}
