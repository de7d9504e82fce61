package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPositionRoundTrip(t *testing.T) {
	payload := []byte(`{"type":"t","id":"1"}`)
	frame := WithPosition(payload, 42, "ab\"c")
	if want := `{"offset":42,"epoch":"ab\"c","type":"t","id":"1"}`; string(frame) != want {
		t.Fatalf("frame %s, want %s", frame, want)
	}
	if back := PayloadOf(frame, 42, "ab\"c"); !bytes.Equal(back, payload) {
		t.Fatalf("PayloadOf %s, want %s", back, payload)
	}
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
		if got := CompactJSON([]byte(tc.in)); got != tc.fast {
			t.Errorf("CompactJSON(%q) = %v, want %v", tc.in, got, tc.fast)
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
		if !CompactJSON(b) {
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
	for _, c := range []Control{
		{Op: "ping"},
		{Op: "welcome", User: "alice", Session: "S1", Ping: 25, Exp: 1764540000, Epoch: "0123abcd", Offset: 42, Recovered: &yes},
		{Op: "welcome", User: "bob", Session: "S2", Ping: 25, Recovered: &no},
		{Op: "subscribed", Topic: "orders/42", Epoch: "e", Offset: 18446744073709551615},
		{Op: "error", Code: CodeForbidden, Topic: "<script>&\"x\"", Reason: "topic not granted\n\u2028 é \x01"},
		{Op: "expiring", Exp: -5},
		{Op: "", User: "\\"},
	} {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Frame(); string(got) != string(want) {
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
		c := Control{Op: op, User: s1, Session: s2, Exp: n, Ping: -n, Topic: s2, Code: s1, Reason: s2,
			Epoch: s1, Offset: off, Recovered: &yes}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Frame(); string(got) != string(want) {
			t.Fatalf("frame() = %q\nMarshal = %q", got, want)
		}
	})
}

// TestPayloadAndFrame: the payload copied out of a string and its frame, in one allocation
// for an epoch as brokers make them (an epoch JSON must escape takes AppendString's slower
// path); appending to the payload leaves the frame alone.
func TestPayloadAndFrame(t *testing.T) {
	for _, tc := range []struct {
		payload string
		offset  uint64
		epoch   string
	}{
		{`{"type":"a","data":1}`, 7, "e1"},
		{`{}`, 1, "0123456789abcdef"},
		{`{"type":"x","data":"` + strings.Repeat("y", 300) + `"}`, 18446744073709551615, "fedcba9876543210"},
		{`{"type":"q"}`, 3, `quote"and\back`},
	} {
		p, frame := PayloadAndFrame(tc.payload, tc.offset, tc.epoch)
		if string(p) != tc.payload {
			t.Fatalf("payload %q, want %q", p, tc.payload)
		}
		if want := WithPosition([]byte(tc.payload), tc.offset, tc.epoch); !bytes.Equal(frame, want) {
			t.Fatalf("frame %q, want %q", frame, want)
		}
		kept := string(frame)
		_ = append(p, "more"...)
		if string(frame) != kept {
			t.Fatalf("appending to the payload changed the frame: %q", frame)
		}
		if n := testing.AllocsPerRun(100, func() { PayloadAndFrame(tc.payload, tc.offset, tc.epoch) }); n != 1 && !strings.Contains(tc.epoch, `"`) {
			t.Fatalf("%q: %v allocations, want 1", tc.epoch, n)
		}
	}
}
