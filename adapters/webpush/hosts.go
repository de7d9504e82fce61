package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gonotify/notify/inbox"
)

// hostPolicy decides which endpoints may be reached: the allowlist of Config.Hosts, and the
// refusal of addresses that are not public unless a host is listed exactly.
type hostPolicy struct {
	exact    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
	any      bool
}

func newHostPolicy(hosts []string) hostPolicy {
	p := hostPolicy{exact: make(map[string]bool)}
	for _, h := range hosts {
		h = normHost(h)
		switch {
		case h == "*":
			p.any = true
		case strings.HasPrefix(h, "*."):
			p.suffixes = append(p.suffixes, h[1:])
		default:
			p.exact[h] = true
		}
	}
	return p
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// allowed reports whether the host is on the allowlist.
func (p hostPolicy) allowed(host string) bool {
	if p.any || p.exact[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) && len(host) > len(s) {
			return true
		}
	}
	return false
}

// public reports whether a is an address of the public internet: not loopback, private,
// link-local, CGNAT, multicast or unspecified.
func public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: an IPv4 address behind it
	netip.MustParsePrefix("2001:db8::/32"), // documentation
}

// checkEndpoint returns why the endpoint must not be pushed to, or nil.
func (p hostPolicy) checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("%w: endpoint is not a URL", ErrRefused)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: endpoint must be https", ErrRefused)
	}
	if u.User != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("%w: endpoint must be https://host/path", ErrRefused)
	}
	host := normHost(u.Hostname())
	if !p.allowed(host) {
		return fmt.Errorf("%w: endpoint's host %s is not an allowed push service", ErrRefused, host)
	}
	if a, err := netip.ParseAddr(host); err == nil && !public(a) && !p.exact[host] {
		return fmt.Errorf("%w: endpoint's host %s is a private address", ErrRefused, host)
	}
	return nil
}

// checkKeys returns why the subscription's keys are malformed, or nil: p256dh must be an
// uncompressed P-256 point, auth 16 bytes, both base64url.
func checkKeys(p256dh, auth string) error {
	pub, err := decodeKey(p256dh)
	if err != nil || len(pub) != 65 {
		return fmt.Errorf("%w: keys.p256dh must be the base64url of a 65-byte P-256 point", ErrRefused)
	}
	if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
		return fmt.Errorf("%w: keys.p256dh is not a point on P-256", ErrRefused)
	}
	if a, err := decodeKey(auth); err != nil || len(a) != 16 {
		return fmt.Errorf("%w: keys.auth must be the base64url of 16 bytes", ErrRefused)
	}
	return nil
}

// CheckSubscription implements [inbox.Pusher]: it returns an error wrapping ErrRefused for
// an endpoint that is not https, not on Config.Hosts or a private address literal (unless
// listed exactly), or keys that are malformed; nil for a subscription that may be added.
func (s *Sender) CheckSubscription(sub inbox.Subscription) error {
	if err := s.hosts.checkEndpoint(sub.Endpoint); err != nil {
		return err
	}
	return checkKeys(sub.P256dh, sub.Auth)
}

var errNotPublic = errors.New("notify: webpush: push service resolves to a private address")

// newClient returns the HTTP client of the pushes: https only, no proxy, no redirect, the
// timeout, and a dialer that refuses addresses that are not public unless the host is listed
// exactly in Config.Hosts. The check is on the address dialed, after resolution, so a name
// that resolves to a private address is refused however it resolves next time.
func newClient(cfg Config, p hostPolicy) *http.Client {
	guarded := &net.Dialer{Timeout: cfg.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !public(ap.Addr()) {
			return errNotPublic
		}
		return nil
	}}
	plain := &net.Dialer{Timeout: cfg.Timeout}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if p.exact[normHost(host)] {
				return plain.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   cfg.Workers,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport:     httpsOnly{tr},
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpsOnly refuses any request that is not https, whatever built it.
type httpsOnly struct{ *http.Transport }

func (t httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return nil, fmt.Errorf("%w: endpoint must be https", ErrRefused)
	}
	return t.Transport.RoundTrip(r)
}
