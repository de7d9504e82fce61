package redisbroker

// PresenceNames returns a user's presence and refusal keys, for the tests that check their
// cluster slots.
func (b *Broker) PresenceNames(user string) []string { return b.pres.names.presenceKeys(user) }

// RefreshPresence runs one round of the presence upkeep now.
func (b *Broker) RefreshPresence() error { return b.pres.refresh() }
