package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gonotify/notify/internal/wire"
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
	// Except leaves one session out: the one that acted, whose page already shows the change.
	// Set it to [SessionFrom] of the page's request. That session gets, in the event's place,
	// only its position and ID (nothing for a broadcast or an ephemeral event), so that
	// neither this event nor a replay of it after a reconnect reaches it; when the ID names a
	// tab of a session shared by a browser's tabs, the session's other tabs get the event.
	// Every other session, on every hub, gets the event, and the history keeps it. An ID
	// that names no session, or one of another user's sessions for [Hub.Send], leaves nobody
	// out; one that SessionFrom would not return is ignored. Default "": nobody is left out.
	Except string
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

func newID() string { return string(appendID(nil)) }

// appendID appends a fresh ID.
func appendID(b []byte) []byte {
	b = append(b, ids.prefix...)
	return strconv.AppendUint(b, ids.n.Add(1), 36)
}

// encoder builds the payloads of events in a buffer reused across sends (see encoders).
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

// release returns e to the pool: the payload it returned must no longer be used.
func (e *encoder) recycle() {
	if e.buf.Cap() > 256<<10 { // a rare huge event does not pin its buffer
		return
	}
	e.buf.Reset()
	encoders.Put(e)
}

// encode turns an event into its payload, once for every recipient. It writes the bytes
// json.Marshal would for the object of PROTOCOL.md (type, id, time, topic when set, data when
// set), without reflection but for the data. The payload lives in e's buffer until release.
func (e *encoder) encode(ev Event, topic string) ([]byte, error) {
	if ev.Type == "" {
		return nil, fmt.Errorf("%w: empty type", ErrInvalidEvent)
	}
	t := ev.Time
	if t.IsZero() {
		t = time.Now().UTC()
	}
	e.buf.Reset()
	b := e.buf.AvailableBuffer()
	if ev.Except != "" && validExcept(ev.Except) {
		b = appendExcept(b, ev.Except)
		b = append(b, `"type":`...)
	} else {
		b = append(b, `{"type":`...)
	}
	b = wire.AppendString(b, ev.Type)
	b = append(b, `,"id":`...)
	if ev.ID == "" {
		b = append(appendID(append(b, '"')), '"')
	} else {
		b = wire.AppendString(b, ev.ID)
	}
	b = append(b, `,"time":"`...)
	b, err := t.AppendText(b) // RFC 3339, as Time.MarshalJSON
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	b = append(b, '"')
	if topic != "" {
		b = append(b, `,"topic":`...)
		b = wire.AppendString(b, topic)
	}
	if ev.Data != nil {
		b = append(b, `,"data":`...)
	}
	e.buf.Write(b)
	if raw, ok := ev.Data.(json.RawMessage); ok && wire.CompactJSON(raw) {
		e.buf.Write(raw) // what Marshal would write for it, without the reflection
	} else if ev.Data != nil {
		// Encode writes what Marshal returns (compact, HTML-escaped, as the field needs it)
		// and a newline, which the closing brace replaces.
		if err := e.enc.Encode(ev.Data); err != nil {
			return nil, fmt.Errorf("%w: data of %q: %w", ErrInvalidEvent, ev.Type, err)
		}
		e.buf.Truncate(e.buf.Len() - 1)
	}
	e.buf.WriteByte('}')
	return e.buf.Bytes(), nil
}
