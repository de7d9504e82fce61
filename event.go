package notify

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Event is one notification. Only Type is required.
type Event struct {
	// Type names the event; clients register handlers by it.
	Type string
	// Data is any JSON-encodable value. Default: none (the "data" field is omitted).
	Data any
	// ID identifies the event; clients deduplicate by it. Default: a unique ID assigned on send.
	ID string
	// Time is when the event happened. Default: the time of the send.
	Time time.Time
	// Ephemeral events (typing indicators, cursor positions) skip the history: they get no
	// offset and are not replayed after a reconnect. Default false.
	Ephemeral bool
}

// wireEvent is an event as it travels (see PROTOCOL.md).
type wireEvent struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Time  time.Time       `json:"time"`
	Topic string          `json:"topic,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// ids makes event IDs unique across processes: a random prefix per process and a counter.
var ids struct {
	prefix string
	n      atomic.Uint64
}

func init() {
	var b [5]byte
	_, _ = rand.Read(b[:])
	ids.prefix = base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

func newID() string {
	return ids.prefix + strconv.FormatUint(ids.n.Add(1), 36)
}

// encode turns an event into its frame, once for every recipient.
func encode(ev Event, topic string) ([]byte, error) {
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: empty type", ErrInvalidEvent)
	}
	w := wireEvent{Type: ev.Type, ID: ev.ID, Time: ev.Time, Topic: topic}
	if w.ID == "" {
		w.ID = newID()
	}
	if w.Time.IsZero() {
		w.Time = time.Now().UTC()
	}
	if ev.Data != nil {
		d, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: data of %q: %w", ErrInvalidEvent, ev.Type, err)
		}
		w.Data = d
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return b, nil
}

// withPosition returns the frame of a stream's event: its payload with the offset and epoch
// put in front, built once per message on each hub.
func withPosition(payload []byte, offset uint64, epoch string) []byte {
	if offset == 0 || len(payload) < 2 {
		return payload
	}
	b := make([]byte, 0, len(payload)+len(epoch)+40)
	b = append(b, `{"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendQuote(b, epoch)
	b = append(b, ',')
	return append(b, payload[1:]...)
}
