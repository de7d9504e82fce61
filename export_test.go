package notify

// Waiting reports how many sessions hold a frame the flusher handed to melody and have not
// written it (the count that makes senders yield, see pace).
func Waiting(h *Hub) int64 { return h.waiting.Load() }
