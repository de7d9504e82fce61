package pginbox_test

import (
	"net"
	"strconv"
	"testing"
)

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

func port(t testing.TB, addr string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}
