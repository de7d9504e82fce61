package notify

import (
	"fmt"
	"testing"
)

func TestCovers(t *testing.T) {
	p := Position{Offset: 5, Epoch: "e"}
	for _, tc := range []struct {
		pos    Position
		offset uint64
		epoch  string
		want   bool
	}{
		{p, 4, "e", true},
		{p, 5, "e", true},
		{p, 6, "e", false},
		{p, 3, "other", false},
		{p, 0, "e", false},          // no offset: a broadcast or ephemeral event
		{Position{}, 1, "e", false}, // nothing sent yet
		{Position{Epoch: "e"}, 1, "e", false},
	} {
		if got := tc.pos.Covers(tc.offset, tc.epoch); got != tc.want {
			t.Errorf("%+v.Covers(%d, %q) = %v, want %v", tc.pos, tc.offset, tc.epoch, got, tc.want)
		}
	}
}

func TestPlanReplay(t *testing.T) {
	history := func(from, to uint64) []Message {
		var h []Message
		for o := from; o <= to; o++ {
			h = append(h, Message{Stream: "u:a", Offset: o, Epoch: "e", Payload: []byte(fmt.Sprintf(`{"n":%d}`, o))})
		}
		return h
	}
	at := func(o uint64, epoch string) *Position { return &Position{Offset: o, Epoch: epoch} }
	pos := Position{Offset: 10, Epoch: "e"}
	for _, tc := range []struct {
		name      string
		history   []Message
		since     *Position
		replay    []uint64 // offsets
		recovered *bool
	}{
		{"nothing asked", history(1, 10), nil, nil, nil},
		{"missed three", history(1, 10), at(7, "e"), []uint64{8, 9, 10}, new(true)},
		{"missed none", history(1, 10), at(10, "e"), nil, new(true)},
		{"missed all, from the stream's start", history(1, 10), at(0, "e"), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, new(true)},
		{"history holds only the newest", history(6, 10), at(3, "e"), nil, new(false)},
		{"history holds exactly what was missed", history(4, 10), at(3, "e"), []uint64{4, 5, 6, 7, 8, 9, 10}, new(true)},
		{"history expired", nil, at(3, "e"), nil, new(false)},
		{"history expired, nothing missed", nil, at(10, "e"), nil, new(true)},
		{"another epoch", history(1, 10), at(3, "old"), nil, new(false)},
		{"ahead of the stream", history(1, 10), at(11, "e"), nil, new(false)},
		{"a hole in the history", append(history(1, 5), history(7, 10)...), at(3, "e"), nil, new(false)},
		{"history short of the position", history(1, 8), at(3, "e"), nil, new(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replay, recovered := planReplay(pos, tc.history, tc.since)
			if (recovered == nil) != (tc.recovered == nil) || recovered != nil && *recovered != *tc.recovered {
				t.Fatalf("recovered %v, want %v", ptr(recovered), ptr(tc.recovered))
			}
			if len(replay) != len(tc.replay) {
				t.Fatalf("replayed %d frames, want %d", len(replay), len(tc.replay))
			}
			for i, o := range tc.replay {
				want := fmt.Sprintf(`{"offset":%d,"epoch":"e","n":%d}`, o, o)
				if string(replay[i]) != want {
					t.Fatalf("frame %d: %s, want %s", i, replay[i], want)
				}
			}
		})
	}
}

func ptr(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}
