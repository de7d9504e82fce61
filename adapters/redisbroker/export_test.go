package redisbroker

// Names returns a stream's keys and channel, for the tests that check their cluster slots.
func (b *Broker) Names(stream string) (keys []string, channel string) {
	return b.keys(stream), b.channel(stream)
}
