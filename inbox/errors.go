package inbox

import "errors"

// Errors returned by an [Inbox]. A [Store] returns [ErrNotFound] itself; any other error of a
// store reaches the caller wrapped in [ErrUnavailable].
var (
	// ErrNotFound is returned when an ID is not one of the user's notifications: whether it
	// does not exist or is another user's, the answer is the same.
	ErrNotFound = errors.New("notify: notification not found")
	// ErrTooLarge is returned by Notify when the notification's data is larger than
	// Config.MaxDataSize, and by the HTTP handler for a request body over its limit.
	ErrTooLarge = errors.New("notify: notification too large")
	// ErrBadCursor is returned by List for a cursor it did not hand out to this user: a
	// malformed or forged one, another user's, or one signed with a CursorKey since changed.
	ErrBadCursor = errors.New("notify: malformed cursor")
	// ErrInvalid is wrapped when a notification or a request is malformed: an empty user ID or
	// type, an ID or type longer than 256 bytes, data that is not JSON, no IDs to change.
	ErrInvalid = errors.New("notify: invalid inbox request")
	// ErrUnavailable wraps every error of the store other than ErrNotFound (a database that
	// is down, a context that ended): the request may succeed if tried again.
	ErrUnavailable = errors.New("notify: inbox unavailable")
)
