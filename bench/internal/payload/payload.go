// Package payload is what the bench servers send and the load generator reads: a JSON object
// carrying the send time in nanoseconds, padded to a chosen size, and the shared JWT secret.
package payload

import (
	"bytes"
	"strconv"
)

// Secret signs the load generator's tokens; every server variant verifies them with it.
var Secret = []byte("bench-secret-0123456789abcdef0123456789")

var tsKey = []byte(`"ts":`)

// Make returns {"ts":<ts>,"pad":"xxx..."} padded to size bytes (or just over, when size is
// smaller than the unpadded object).
func Make(size int, ts int64) []byte {
	b := make([]byte, 0, max(size, 48))
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// TS finds the send time in one event (a line of a frame); ok is false for lines without one
// (control frames).
func TS(line []byte) (ts int64, ok bool) {
	i := bytes.Index(line, tsKey)
	if i < 0 {
		return 0, false
	}
	for _, c := range line[i+len(tsKey):] {
		if c < '0' || c > '9' {
			break
		}
		ts = ts*10 + int64(c-'0')
		ok = true
	}
	return ts, ok
}
