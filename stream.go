package notify

import "github.com/gonotify/notify/internal/wire"

// Stream names, for writers of a [Broker]: a hub subscribes to, publishes on and reads the
// history of streams named by these functions, and a broker may derive its keys from them
// (adapters/redisbroker puts a user's stream and presence in one Redis Cluster slot).

// BroadcastStream is the stream of [Hub.Broadcast]: every hub subscribes to it, and it has no
// history.
const BroadcastStream = wire.Broadcast

// UserStream returns the name of the stream of a user's events.
func UserStream(userID string) string { return wire.UserStream(userID) }

// TopicStream returns the name of the stream of a topic's events.
func TopicStream(topic string) string { return wire.TopicStream(topic) }

// StreamUser returns the user of a stream [UserStream] named, and false for any other stream.
func StreamUser(stream string) (userID string, ok bool) { return wire.UserOf(stream) }

// EncodeFrame returns the frame sessions receive for an event at pos: the payload (a JSON
// object) with the position put in front. A broker that builds it once and keeps it in its
// history (see [Message].Frame) saves every hub a copy. An event without an offset (a
// broadcast, an ephemeral event) is its own frame.
func EncodeFrame(payload []byte, pos Position) []byte {
	return wire.WithPosition(payload, pos.Offset, pos.Epoch)
}
