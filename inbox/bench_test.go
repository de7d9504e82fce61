package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// BenchmarkMemoryNotify is the cost of one Notify on the in-memory store: validate, store,
// and send the live event through the hub (to a user with no session here).
//
//	go test -run '^$' -bench MemoryNotify -benchmem ./inbox/
func BenchmarkMemoryNotify(b *testing.B) {
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ib, err := inbox.New(hub, inbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer ib.Close()
	ctx := context.Background()
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("user", i)
	}
	n := inbox.Notification{Type: "comment", Data: json.RawMessage(`{"text":"hello","from":"bob"}`)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := ib.Notify(ctx, users[i%len(users)], n); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryStoreBytes reports the heap that 1,000 stored notifications take in the
// in-memory store (100 users with 1,000 each, 30 bytes of data and a 24-character ID).
//
//	go test -run '^$' -bench MemoryStoreBytes -benchtime 3x ./inbox/
func BenchmarkMemoryStoreBytes(b *testing.B) {
	const users, each = 100, 1000
	data := json.RawMessage(`{"text":"hello","from":"bob"}`)
	at := time.Now()
	ctx := context.Background()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := inbox.NewMemoryStore()
		for u := range users {
			user := fmt.Sprint("user", u)
			for i := range each {
				n := inbox.Notification{ID: fmt.Sprintf("%024d", i), Type: "comment", Data: data, CreatedAt: at.Add(time.Duration(i))}
				if _, _, _, err := s.Insert(ctx, user, n, each); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(users*each/1000), "bytes/1000-notifications")
		runtime.KeepAlive(s)
	}
}
