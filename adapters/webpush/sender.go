package webpush

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/gonotify/notify/inbox"
)

// Sender sends an inbox's notifications as Web Push messages: it implements [inbox.Pusher].
// Push queues a message and returns; Config.Workers goroutines send the queue, and one more
// holds the pushes waiting to be retried. All methods are safe for concurrent use; Close
// stops the goroutines and waits for them.
type Sender struct {
	cfg    Config
	hosts  hostPolicy
	client *http.Client
	// after is the clock of the retries, and onRetry sees each wait scheduled: tests set them
	// before the goroutines start.
	after   func(time.Duration) <-chan time.Time
	onRetry func(time.Duration)

	// mu guards closed and the sends on queue and retry, which Close closes.
	mu     sync.RWMutex
	closed bool
	queue  chan *job
	retry  chan *job

	ctx    context.Context // ends when Close gives up waiting: in-flight requests stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers and the retrier

	stats struct{ sent, dropped, retried, failed, gone, refused atomic.Int64 }
}

// job is one push: the message's subscription, its encoded payload and headers, and how many
// times it was tried. One goroutine at a time has it (a worker, or the retrier while it
// waits), handed over through the channels.
type job struct {
	sub      inbox.Subscription
	payload  []byte
	topic    string
	expires  time.Time
	gone     func(context.Context)
	attempts int
	due      time.Time
}

// New returns a sender configured by cfg, or the configuration mistake it found (wrapping
// notify.ErrConfig), and starts its goroutines. Close it when done.
func New(cfg Config) (*Sender, error) {
	s, err := newSender(cfg)
	if err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// newSender returns a sender whose goroutines are not started yet.
func newSender(cfg Config) (*Sender, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, hosts: newHostPolicy(cfg.Hosts), after: time.After,
		queue: make(chan *job, cfg.QueueSize), retry: make(chan *job, cfg.QueueSize)}
	s.client = newClient(cfg, s.hosts)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func (s *Sender) start() {
	for range s.cfg.Workers {
		s.wg.Go(s.work)
	}
	s.wg.Go(s.retrier)
}

// PublicKey implements [inbox.Pusher]: Config.PublicKey, base64url without padding.
func (s *Sender) PublicKey() string { return s.cfg.PublicKey }

// payload is what the service worker receives, as JSON.
type payload struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	Icon   string `json:"icon"`
	URL    string `json:"url"`
	Tag    string `json:"tag"`
	Ack    string `json:"ack"`
	AckURL string `json:"ackURL"`
}

// Push implements [inbox.Pusher]: it maps the notification with Config.Display, encodes the
// payload and queues it, without waiting. ErrPayloadTooLarge for a payload over MaxPayload,
// ErrQueueFull when Config.QueueSize pushes wait already (the push is dropped), ErrClosed
// after Close.
func (s *Sender) Push(m inbox.PushMessage) error {
	d := s.cfg.Display(m.Notification)
	if d.URL == "" {
		d.URL = "/"
	}
	if d.Tag == "" {
		d.Tag = m.Notification.ID
	}
	if d.Title == "" {
		d.Title = m.Notification.Type
	}
	b, err := json.Marshal(payload{V: 1, ID: m.Notification.ID, Type: m.Notification.Type, Title: d.Title, Body: d.Body,
		Icon: d.Icon, URL: d.URL, Tag: d.Tag, Ack: m.Ack, AckURL: m.AckURL})
	if err != nil {
		return fmt.Errorf("notify: webpush: %w", err)
	}
	if len(b) > MaxPayload {
		s.stats.refused.Add(1)
		return fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(b), MaxPayload)
	}
	sum := sha256.Sum256([]byte(m.Notification.ID))
	j := &job{sub: m.Subscription, payload: b, expires: m.Expires, gone: m.Gone,
		topic: base64.RawURLEncoding.EncodeToString(sum[:24])} // 32 characters, RFC 8030's most
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- j:
		return nil
	default:
		s.stats.dropped.Add(1)
		return ErrQueueFull
	}
}

// Close stops accepting pushes and waits for the queued ones to be sent, until ctx ends:
// then it stops the requests in flight, drops what still waits (counted in Stats.Dropped)
// and returns ctx.Err(). Pushes waiting to be retried are dropped at once. It is safe to
// call more than once.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
		close(s.retry)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.client.CloseIdleConnections()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// Stats are a sender's counters since New.
type Stats struct {
	Sent    int64 // pushes the push service accepted
	Dropped int64 // pushes dropped: the queue full, a retry past the queue's bound, or Close
	Retried int64 // retries scheduled
	Failed  int64 // pushes given up after the retries, or refused by the push service (4xx)
	Gone    int64 // subscriptions deleted: the push service answered 404 or 410
	Refused int64 // payloads refused: over MaxPayload here, or 413 from the push service
}

// Stats returns the sender's counters.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.stats.sent.Load(), Dropped: s.stats.dropped.Load(), Retried: s.stats.retried.Load(),
		Failed: s.stats.failed.Load(), Gone: s.stats.gone.Load(), Refused: s.stats.refused.Load()}
}

func (s *Sender) options(j *job) *webpushgo.Options {
	ttl := s.cfg.TTL
	if !j.expires.IsZero() {
		ttl = min(ttl, time.Until(j.expires))
	}
	return &webpushgo.Options{
		HTTPClient:      s.client,
		Subscriber:      s.subscriber(),
		Topic:           j.topic,
		TTL:             max(int(ttl/time.Second), 0),
		Urgency:         webpushgo.Urgency(s.cfg.Urgency),
		VAPIDPublicKey:  s.cfg.PublicKey,
		VAPIDPrivateKey: s.cfg.PrivateKey,
	}
}

// subscriber is Config.Subject as webpush-go wants it: it adds "mailto:" to what is not an
// https URL.
func (s *Sender) subscriber() string {
	if len(s.cfg.Subject) > 7 && s.cfg.Subject[:7] == "mailto:" {
		return s.cfg.Subject[7:]
	}
	return s.cfg.Subject
}
