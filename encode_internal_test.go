package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
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
			defer e.release()
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
			defer e.release()
			if _, err := e.encode(tc.ev, ""); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
		})
	}
}

// An encoder reused after a failure or a large event produces the same bytes as a fresh one.
func TestEncoderReuse(t *testing.T) {
	e := getEncoder()
	defer e.release()
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
	defer e.release()
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

func TestPositionRoundTrip(t *testing.T) {
	payload := []byte(`{"type":"t","id":"1"}`)
	frame := withPosition(payload, 42, "ab\"c")
	if want := `{"offset":42,"epoch":"ab\"c","type":"t","id":"1"}`; string(frame) != want {
		t.Fatalf("frame %s, want %s", frame, want)
	}
	if back := payloadOf(frame, 42, "ab\"c"); !bytes.Equal(back, payload) {
		t.Fatalf("payloadOf %s, want %s", back, payload)
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
		defer e.release()
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

func TestCompactJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`{"a":[1,-2.5e+3,0,true,false,null,"x\n\u00e9\"\\/"]}`, true},
		{`"é"`, true}, {`[]`, true}, {`{}`, true}, {`0`, true}, {`-0.1E9`, true},
		{`{"a": 1}`, false},       // white space: Marshal removes it
		{` 1`, false},             // the same
		{`"<b>"`, false},          // Marshal escapes <, > and &
		{"\"\u2028\"", false},     // and the line separators
		{`{"a":1,}`, false},       // invalid
		{`[01]`, false},           // invalid
		{`"\x"`, false},           // invalid escape
		{`"\u12"`, false},         // short escape
		{"\"a\tb\"", false},       // control character
		{`{"a":1}{"b":2}`, false}, // two values
		{``, false}, {`-`, false}, {`1.`, false}, {`1e`, false}, {`tru`, false}, {`{"a"}`, false},
		{strings.Repeat("[", 66) + strings.Repeat("]", 66), false}, // deeper than the fast path goes
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), true},
	} {
		if got := compactJSON([]byte(tc.in)); got != tc.fast {
			t.Errorf("compactJSON(%q) = %v, want %v", tc.in, got, tc.fast)
		}
	}
}

// FuzzCompactJSON: whatever the fast path accepts is valid JSON that Marshal writes unchanged,
// so copying it gives the same frame as encoding it.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x"]}`, `"<"`, `[1,]`, `{"a": 1}`, `"\u00e9"`, `-0`, `1E+2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !compactJSON(b) {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		m, err := json.Marshal(json.RawMessage(b))
		if err != nil || !bytes.Equal(m, b) {
			t.Fatalf("accepted %q, which Marshal writes as %q (%v)", b, m, err)
		}
	})
}

// TestControlFrame: control frames are the bytes json.Marshal writes for them.
func TestControlFrame(t *testing.T) {
	yes, no := true, false
	for _, c := range []control{
		{Op: "ping"},
		{Op: "welcome", User: "alice", Session: "S1", Ping: 25, Exp: 1764540000, Epoch: "0123abcd", Offset: 42, Recovered: &yes},
		{Op: "welcome", User: "bob", Session: "S2", Ping: 25, Recovered: &no},
		{Op: "subscribed", Topic: "orders/42", Epoch: "e", Offset: 18446744073709551615},
		{Op: "error", Code: codeForbidden, Topic: "<script>&\"x\"", Reason: "topic not granted\n\u2028 é \x01"},
		{Op: "expiring", Exp: -5},
		{Op: "", User: "\\"},
	} {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.frame(); string(got) != string(want) {
			t.Errorf("frame() = %s\nMarshal = %s", got, want)
		}
	}
}

// FuzzControlFrame compares control frames with json.Marshal for arbitrary strings.
func FuzzControlFrame(f *testing.F) {
	f.Add("error", "a<b", "r\u2028", int64(-1), uint64(3))
	f.Add("welcome", "\x00\xff", "", int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, op, s1, s2 string, n int64, off uint64) {
		yes := n%2 == 0
		c := control{Op: op, User: s1, Session: s2, Exp: n, Ping: -n, Topic: s2, Code: s1, Reason: s2,
			Epoch: s1, Offset: off, Recovered: &yes}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.frame(); string(got) != string(want) {
			t.Fatalf("frame() = %q\nMarshal = %q", got, want)
		}
	})
}
