package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// marshalled is what encode must produce: the bytes json.Marshal gives for the event object.
func marshalled(t testing.TB, ev Event, topic string) []byte {
	t.Helper()
	w := struct {
		Type  string          `json:"type"`
		ID    string          `json:"id"`
		Time  time.Time       `json:"time"`
		Topic string          `json:"topic,omitempty"`
		Data  json.RawMessage `json:"data,omitempty"`
	}{Type: ev.Type, ID: ev.ID, Time: ev.Time, Topic: topic}
	if ev.Data != nil {
		d, err := json.Marshal(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		w.Data = d
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name  string
		ev    Event
		topic string
	}{
		{"plain", Event{Type: "order.shipped", ID: "e1", Time: at, Data: map[string]any{"order": 42}}, ""},
		{"topic", Event{Type: "t", ID: "e2", Time: at}, "news.eu"},
		{"escapes", Event{Type: "a\"b\\c<d>&\n\u2028é", ID: "i\td", Time: at, Data: "x<y"}, "t"},
		{"raw data", Event{Type: "t", ID: "e3", Time: at, Data: json.RawMessage(` { "a" : [1, 2] } `)}, ""},
		{"compact raw data", Event{Type: "t", ID: "e6", Time: at, Data: json.RawMessage(`{"a":[1,2],"b":"\u003c"}`)}, ""},
		{"raw data to escape", Event{Type: "t", ID: "e7", Time: at, Data: json.RawMessage(`{"a":"<&>"}`)}, ""},
		{"null data", Event{Type: "t", ID: "e4", Time: at, Data: (map[string]int)(nil)}, ""},
		{"utc", Event{Type: "t", ID: "e5", Time: at.UTC()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := getEncoder()
			defer e.recycle()
			got, err := e.encode(tc.ev, tc.topic)
			if err != nil {
				t.Fatal(err)
			}
			if want := marshalled(t, tc.ev, tc.topic); !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"empty type", Event{}},
		{"bad raw data", Event{Type: "t", Data: json.RawMessage(`{`)}},
		{"unencodable data", Event{Type: "t", Data: func() {}}},
		{"time out of range", Event{Type: "t", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := getEncoder()
			defer e.recycle()
			if _, err := e.encode(tc.ev, ""); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
		})
	}
}

// An encoder reused after a failure or a large event produces the same bytes as a fresh one.
func TestEncoderReuse(t *testing.T) {
	e := getEncoder()
	defer e.recycle()
	_, _ = e.encode(Event{Type: "t", Data: func() {}}, "")
	ev := Event{Type: "t", ID: "x", Time: time.Unix(1, 0).UTC(), Data: 1}
	got, err := e.encode(ev, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := marshalled(t, ev, ""); !bytes.Equal(got, want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestEncodeGeneratesID(t *testing.T) {
	e := getEncoder()
	defer e.recycle()
	seen := map[string]bool{}
	for range 3 {
		b, err := e.encode(Event{Type: "t"}, "")
		if err != nil {
			t.Fatal(err)
		}
		var w struct{ ID string }
		if err := json.Unmarshal(b, &w); err != nil || w.ID == "" || seen[w.ID] {
			t.Fatalf("id %q in %s (err %v)", w.ID, b, err)
		}
		seen[w.ID] = true
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("t", "id", "topic", "data")
	f.Add("a\"<", "\x00", "", "\u2028")
	f.Fuzz(func(t *testing.T, typ, id, topic, data string) {
		if id == "" {
			id = "-" // an empty ID is generated: TestEncodeGeneratesID
		}
		ev := Event{Type: typ, ID: id, Time: time.Unix(1700000000, 5).UTC(), Data: data}
		e := getEncoder()
		defer e.recycle()
		got, err := e.encode(ev, topic)
		if typ == "" {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("empty type: err = %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalled(t, ev, topic); !bytes.Equal(got, want) {
			t.Fatalf("encode:\n got %q\nwant %q", got, want)
		}
	})
}
