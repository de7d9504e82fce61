package notify

import "time"

// Waiting reports how many sessions hold a frame the flusher handed to melody and have not
// written it (the count that makes senders yield, see pace).
func Waiting(h *Hub) int64 { return h.fl.waiting.Load() }

// SetClock makes now the hub's clock for rate limiting; call it before the hub serves.
func SetClock(h *Hub, now func() time.Time) { h.now = now }

// Streams reports how many stream records the hub's in-memory broker keeps.
func Streams(h *Hub) int {
	b := h.broker.(*memoryBroker)
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}

// SetTicketClock makes now the clock of the hub's in-process ticket store.
func SetTicketClock(h *Hub, now func() time.Time) { h.tickets.(*localTickets).now = now }
