package notify

import "errors"

// Errors returned by the hub. Token failures wrap [ErrUnauthorized] with the reason, so
// errors.Is(err, ErrUnauthorized) holds for every one of them; no error ever contains a token.
var (
	// ErrNoDefaultHub is returned by the package-level Send, Publish and Broadcast when
	// SetDefault has not been called.
	ErrNoDefaultHub = errors.New("notify: no default hub (call notify.SetDefault)")
	// ErrClosed is returned by every send after Shutdown has begun.
	ErrClosed = errors.New("notify: hub is shut down")
	// ErrUnauthorized is wrapped by every token verification failure.
	ErrUnauthorized = errors.New("notify: unauthorized")
	// ErrInvalidTopic is wrapped when a topic name breaks the naming rules (see PROTOCOL.md).
	ErrInvalidTopic = errors.New("notify: invalid topic")
	// ErrInvalidEvent is wrapped when an event has no type or its data cannot be encoded.
	ErrInvalidEvent = errors.New("notify: invalid event")
	// ErrInvalidUser is returned when a user ID is empty.
	ErrInvalidUser = errors.New("notify: empty user ID")
	// ErrInvalidSession is wrapped when a session ID is not one a hub hands out
	// ([Hub.SendSession]).
	ErrInvalidSession = errors.New("notify: invalid session ID")
	// ErrConfig is wrapped by every configuration mistake New reports.
	ErrConfig = errors.New("notify: invalid config")
)
