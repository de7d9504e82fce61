//go:build !linux && !darwin

package notify

// setNotSentLowat does nothing where TCP_NOTSENT_LOWAT is not known.
func setNotSentLowat(fd uintptr, n int) {}
