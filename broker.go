package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// A Broker carries events between the hubs of a cluster and keeps each stream's recent history
// for missed-event recovery. The default, used when [Config.Broker] is nil, is an in-memory
// broker for a single process; adapters/redisbroker connects several processes through Redis.
//
// Events travel in streams: one per user ([UserStream]), one per topic ([TopicStream]), and
// one for broadcasts ([BroadcastStream]). A broker numbers a stream's events with consecutive offsets within an epoch, a random ID that changes
// whenever the stream's history is lost. A hub calls its broker's methods concurrently.
type Broker interface {
	// Start is called once, by New, before any other method; it connects within ctx's
	// deadline. The broker then calls deliver for every message of every stream this hub has
	// subscribed to, including those this hub published, in offset order within a stream and
	// never concurrently for one stream. deliver does not block.
	Start(ctx context.Context, deliver func(Message)) error
	// Publish assigns the next offset of the stream, appends the payload to its history and
	// hands it to every subscribed hub. An ephemeral message gets no offset and no history.
	// A nil error means the message was handed over; the Report says where it went (its
	// Position, whether and until when it is stored, how many hubs received it, -1 when the
	// broker cannot tell). The hub reuses payload's memory once Publish returns: a broker
	// that keeps it, or delivers it, keeps a copy.
	Publish(ctx context.Context, stream string, payload []byte, ephemeral bool) (Report, error)
	// Subscribe asks for the stream's messages; it returns once they will be delivered. Calls
	// are counted: the stream stays subscribed until as many Unsubscribe calls have been made.
	Subscribe(ctx context.Context, stream string) error
	// Unsubscribe undoes one Subscribe.
	Unsubscribe(ctx context.Context, stream string) error
	// History returns the stream's current position and, when after is of the stream's
	// current epoch, the messages after it that its history still holds, oldest first. With
	// after nil (a session that asks for no recovery) only the position is read.
	History(ctx context.Context, stream string, after *Position) (Position, []Message, error)
	// Close stops delivering and releases the broker's resources; the hub calls it from
	// Shutdown, after its sessions have ended.
	Close() error
}

// Report is what a send knows of its event once the broker took it: where the event went. It
// is a snapshot of that moment, not a promise that anyone saw the event: a hub counted may be
// closing a session, and a session opening a moment later recovers the event from the history.
type Report struct {
	// Position is the event's place in its stream; zero for an ephemeral event or a broadcast.
	Position Position
	// Stored reports whether the event is kept for recovery, and StoredUntil until when at
	// the latest (the history's TTL; a full history drops it sooner). StoredUntil is zero when
	// the broker does not say.
	Stored      bool
	StoredUntil time.Time
	// Nodes is how many hubs received the event: for a user's event, those holding a session
	// of the user; for a topic's, those holding a subscriber; for a broadcast, every hub. 0
	// means nobody was online for it (the event waits in the history, if stored); -1 means
	// the broker cannot tell. [Hub.Presence] lists a user's sessions.
	Nodes int
}

// Position is a place in a stream: the offset of its last event within an epoch.
type Position struct {
	// Offset is the last event's offset; 0 when the stream has none yet.
	Offset uint64
	// Epoch identifies the stream's history; a new epoch means earlier offsets are void.
	Epoch string
}

// Message is one event in a stream, as a broker carries it.
type Message struct {
	Stream string
	// Offset and Epoch place the message in its stream; Offset is 0 for an ephemeral message.
	Offset uint64
	Epoch  string
	// Payload is the encoded event.
	Payload []byte
	// Frame, when set, is the payload with its position as sessions receive it
	// ({"offset":...,"epoch":...,<the payload's members>}): a broker that builds it once (and
	// keeps it in its history) saves every hub the copy. Default nil: the hub builds it.
	Frame []byte
}

// NewEpoch returns a fresh random epoch, for brokers.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Defaults of the history, for the in-memory broker and adapters/redisbroker.
const (
	DefaultHistorySize = 100
	DefaultHistoryTTL  = 5 * time.Minute
	// StreamRetention is how long a stream's position outlives its last event.
	StreamRetention = 24 * time.Hour
)

// memoryBroker is the single-process broker: every stream is local, and history lives in a
// ring per stream.
//
// Only a stream that had an event has a record (a memStream: about 200 bytes with its map
// entry, plus its history ring of up to size entries of 32 bytes and a frame each). The ring
// is freed ttl after the stream's last event and the record StreamRetention after it. Reading
// the position of a stream without a record creates nothing: such a stream is at offset 0 of
// the epoch epochAt gives, which its first event then starts. So a subscription to a topic that
// never had an event costs nothing once it ends, however many of them a client makes.
type memoryBroker struct {
	size    int
	ttl     time.Duration
	deliver func(Message)
	// reaches reports whether the hub holds a session on a stream: the Nodes of a Report.
	reaches func(stream string) bool
	boot    string // random, per broker: the root of the epochs of epochAt

	mu      sync.Mutex
	streams map[string]*memStream

	stop chan struct{}
	done chan struct{}
}

type memStream struct {
	mu     sync.Mutex
	epoch  string
	offset uint64
	ring   []memEntry // len <= size; ring[head] is the oldest once full
	head   int
	last   time.Time // of the last publish
}

// memEntry is one event of a stream's history: its frame, with the position in it. The ring
// holds consecutive offsets, the newest being the stream's, so an entry's offset is implied.
type memEntry struct {
	at    int64 // unix nanoseconds
	frame []byte
}

func newMemoryBroker(size int, ttl time.Duration, reaches func(stream string) bool) *memoryBroker {
	return &memoryBroker{size: size, ttl: ttl, reaches: reaches, streams: make(map[string]*memStream), boot: NewEpoch(),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (b *memoryBroker) Start(_ context.Context, deliver func(Message)) error {
	b.deliver = deliver
	go b.sweep()
	return nil
}

// sweep frees the history of streams idle longer than the TTL, and forgets streams idle longer
// than StreamRetention (their next event starts a new epoch). Keeping a stream's position
// longer than its history lets a client that missed nothing recover after a long idle time.
func (b *memoryBroker) sweep() {
	defer close(b.done)
	t := time.NewTicker(min(b.ttl, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			for name, s := range b.streams {
				s.mu.Lock()
				switch idle := now.Sub(s.last); {
				case idle > StreamRetention:
					delete(b.streams, name)
				case idle > b.ttl:
					s.ring, s.head = nil, 0
				}
				s.mu.Unlock()
			}
			b.mu.Unlock()
		}
	}
}

// epochAt is the epoch of every stream without a record at t: the broker's boot ID and the
// number of the StreamRetention-long window t falls in. A stream is created with the epoch of
// its first event's window, and a record is dropped only StreamRetention after its last event,
// so a later record of the same stream is of a later window: an epoch never names two
// histories. A client given offset 0 of a window's epoch (the stream had no record then) that
// finds the stream created within the same window has missed nothing before the stream's
// first offset; one that asks in a later window gets recovered:false, which is honest, since a
// record could have come and gone in between.
func (b *memoryBroker) epochAt(t time.Time) string {
	return b.boot + "." + strconv.FormatInt(t.Unix()/int64(StreamRetention/time.Second), 36)
}

// stream returns the stream's record, creating it.
func (b *memoryBroker) stream(name string) *memStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[name]
	if s == nil {
		now := time.Now()
		s = &memStream{epoch: b.epochAt(now), last: now}
		b.streams[name] = s
	}
	return s
}

func (b *memoryBroker) Publish(_ context.Context, stream string, payload []byte, ephemeral bool) (Report, error) {
	r := Report{Nodes: 0}
	if b.reaches(stream) {
		r.Nodes = 1
	}
	if ephemeral {
		b.deliver(Message{Stream: stream, Payload: bytes.Clone(payload)})
		return r, nil
	}
	r.Position = b.publish(stream, payload)
	if b.size > 0 {
		r.Stored, r.StoredUntil = true, time.Now().Add(b.ttl)
	}
	return r, nil
}

// publish appends a message to the stream and delivers it; it returns the message's position.
func (b *memoryBroker) publish(stream string, payload []byte) Position {
	s := b.stream(stream)
	s.mu.Lock()
	defer s.mu.Unlock() // held across deliver: a stream's messages reach the hub in order
	now := time.Now()
	s.offset++
	s.last = now
	// The frame the sessions get is built here, once, and kept as the history entry.
	frame := EncodeFrame(payload, Position{Offset: s.offset, Epoch: s.epoch})
	e := memEntry{at: now.UnixNano(), frame: frame}
	switch {
	case len(s.ring) < cap(s.ring):
		s.ring = append(s.ring, e)
	case len(s.ring) < b.size:
		// Grown by four, not doubled: fewer copies while a busy stream fills its history.
		r := make([]memEntry, len(s.ring), min(b.size, max(8, 4*cap(s.ring))))
		copy(r, s.ring)
		s.ring = append(r, e)
	case b.size > 0:
		s.ring[s.head] = e
		s.head = (s.head + 1) % b.size
	}
	b.deliver(Message{Stream: stream, Offset: s.offset, Epoch: s.epoch, Payload: payload, Frame: frame})
	return Position{Offset: s.offset, Epoch: s.epoch}
}

// Subscribe and Unsubscribe have nothing to do: in one process every stream is delivered.
func (b *memoryBroker) Subscribe(context.Context, string) error   { return nil }
func (b *memoryBroker) Unsubscribe(context.Context, string) error { return nil }

func (b *memoryBroker) History(_ context.Context, stream string, after *Position) (Position, []Message, error) {
	b.mu.Lock()
	s := b.streams[stream]
	b.mu.Unlock()
	if s == nil {
		return Position{Epoch: b.epochAt(time.Now())}, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := Position{Offset: s.offset, Epoch: s.epoch}
	if after == nil || after.Epoch != s.epoch || after.Offset >= s.offset {
		return pos, nil, nil
	}
	cutoff := time.Now().Add(-b.ttl).UnixNano()
	first := s.offset - uint64(len(s.ring)) + 1
	skip := 0
	if after.Offset >= first {
		skip = int(after.Offset - first + 1)
	}
	msgs := make([]Message, 0, len(s.ring)-skip)
	for i := skip; i < len(s.ring); i++ {
		e := s.ring[(s.head+i)%len(s.ring)]
		if e.at > cutoff {
			off := first + uint64(i)
			msgs = append(msgs, Message{Stream: stream, Offset: off, Epoch: s.epoch,
				Payload: wire.PayloadOf(e.frame, off, s.epoch), Frame: e.frame})
		}
	}
	return pos, msgs, nil
}

func (b *memoryBroker) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	return nil
}
