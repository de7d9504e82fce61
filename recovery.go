package notify

import "github.com/gonotify/notify/internal/wire"

// Recovery, as pure functions over positions: what a session that asks to recover gets
// replayed (planReplay), and whether a live frame goes out or was sent already (Covers). The
// session's stream state that uses them is the session's (see session.deliver and
// session.flushRecovered).

// Covers reports whether the event at offset in epoch is at or before p: a client at p has it
// already. An event without an offset (a broadcast, an ephemeral event) is never covered.
func (p Position) Covers(offset uint64, epoch string) bool {
	return offset > 0 && p.Epoch == epoch && offset <= p.Offset
}

// planReplay decides what a session asking to recover from since gets, given the stream's
// position and the history the broker holds (oldest first): the frames to replay, and whether
// that is everything it missed. recovered is nil when since is nil (nothing was asked); it is
// false, with nothing to replay, when the epoch changed, since is ahead of the stream, or the
// history no longer holds every event after since.
func planReplay(pos Position, history []Message, since *Position) (replay [][]byte, recovered *bool) {
	if since == nil {
		return nil, nil
	}
	if since.Epoch != pos.Epoch || since.Offset > pos.Offset {
		return nil, new(false)
	}
	next := since.Offset + 1
	for _, m := range history {
		switch {
		case m.Offset < next:
			continue
		case m.Offset > next: // the history no longer holds what the client missed
			return nil, new(false)
		}
		replay = append(replay, m.frameOf())
		next++
	}
	if next != pos.Offset+1 {
		return nil, new(false)
	}
	return replay, new(true)
}

// frameOf is the message as sessions receive it: its Frame, or its payload with its position.
func (m Message) frameOf() []byte {
	if m.Frame != nil {
		return m.Frame
	}
	return wire.WithPosition(m.Payload, m.Offset, m.Epoch)
}
