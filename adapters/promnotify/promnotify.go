// Package promnotify exports a notify hub's counters ([notify.Stats]) as Prometheus metrics.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(promnotify.NewCollector(hub))
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The collector reads [notify.Hub.Stats] once per scrape and keeps no state of its own, so the
// hub's send path pays nothing for it. Every metric is prefixed notify_:
//
//	sessions, users, topics          gauges: open sessions, users with one or more, topics
//	                                 with a subscriber on this hub
//	transport_sessions{transport}    gauge: open sessions by transport, "websocket" or "sse"
//	connects_total{transport}        sessions opened, by transport, "websocket" or "sse"
//	disconnects_total{code,transport}
//	                                 sessions ended, by close code (an event stream's: its
//	                                 close event's, 1006 when it broke off); "other" for
//	                                 codes the protocol does not define
//	upgrades_refused_total{reason}   upgrades refused: "no_token", "token_expired",
//	                                 "token_invalid", "token_too_large", "origin",
//	                                 "user_sessions", "hub_sessions", "shutting_down",
//	                                 "bad_request", "signed_out"
//	sends_total{kind}                calls of Send ("user"), Publish ("topic") and
//	                                 Broadcast ("broadcast")
//	deliveries_total                 events handed to sessions, one per session reached
//	frames_written_total             frames written, WebSocket frames or, on an event stream,
//	                                 the events one such frame would have held
//	written_bytes_total              their payload bytes
//	slow_consumer_closes_total       sessions closed as slow consumers
//	abuse_closes_total               sessions closed for protocol abuse
//	rate_limited_total               client messages refused as rate limited
//	recoveries_total{recovered}      recoveries asked for, complete ("true") or not ("false")
//	present                          gauge: this hub's sessions recorded in presence
//	transitions_total{kind}          cluster-wide transitions that happened on this hub: a
//	                                 user's first session anywhere ("online"), last ("offline")
//	broker_errors_total              failed broker calls
//	broker_reconnects_total          broker reconnections, from [NewBrokerCollector]
//	send_duration_seconds            histogram of the time Send, Publish and Broadcast took
//
// No label takes a value per user or topic: the number of series is bounded whatever the
// load (the transport label has two values: 2 connects and 26 disconnects series). Every close code and refusal reason the hub knows has its series from the start, at
// zero, so that rate() sees the first one. To export several hubs from one process, register each collector through
// [prometheus.WrapRegistererWith] with a label that tells them apart.
package promnotify

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gonotify/notify"
)

// NewCollector returns a Prometheus collector of h's metrics (see the package documentation
// for the list). It is a checked collector: its Describe lists every descriptor it collects.
func NewCollector(h *notify.Hub) prometheus.Collector {
	return &collector{hub: h}
}

type collector struct{ hub *notify.Hub }

// Reconnector is a broker that counts its reconnections to its backend, as
// adapters/redisbroker's Broker does.
type Reconnector interface{ Reconnects() uint64 }

// NewBrokerCollector returns a Prometheus collector of notify_broker_reconnects_total, read
// from b at each scrape. Register it beside [NewCollector]'s when the hub has such a broker.
func NewBrokerCollector(b Reconnector) prometheus.Collector { return brokerCollector{b} }

type brokerCollector struct{ b Reconnector }

// Describe implements [prometheus.Collector].
func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- reconnectsDesc }

// Collect implements [prometheus.Collector].
func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(reconnectsDesc, prometheus.CounterValue, float64(c.b.Reconnects()))
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("notify_"+name, help, labels, nil)
}

var (
	sessionsDesc    = desc("sessions", "Open sessions.")
	transportDesc   = desc("transport_sessions", "Open sessions by transport (websocket, sse).", "transport")
	usersDesc       = desc("users", "Users with at least one open session.")
	topicsDesc      = desc("topics", "Topics with at least one subscriber on this hub.")
	connectsDesc    = desc("connects_total", "Sessions opened, by transport (websocket, sse).", "transport")
	disconnectsDesc = desc("disconnects_total", "Sessions ended, by close code "+
		"(1006: the connection broke; other: a code the protocol does not define) and transport (websocket, sse).", "code", "transport")
	refusedDesc = desc("upgrades_refused_total",
		"Upgrade requests answered without an upgrade, by reason.", "reason")
	sendsDesc = desc("sends_total", "Calls of Send (kind user), Publish (topic) and "+
		"Broadcast (broadcast), failed ones included.", "kind")
	deliveriesDesc = desc("deliveries_total",
		"Events handed to sessions on this hub, one per session reached.")
	framesDesc = desc("frames_written_total",
		"WebSocket text frames written to clients; one may hold several events.")
	bytesDesc = desc("written_bytes_total",
		"Payload bytes of the WebSocket frames written to clients.")
	slowDesc        = desc("slow_consumer_closes_total", "Sessions closed as slow consumers.")
	abuseDesc       = desc("abuse_closes_total", "Sessions closed for protocol abuse.")
	rateLimitedDesc = desc("rate_limited_total", "Client messages refused as rate limited.")
	recoveriesDesc  = desc("recoveries_total",
		"Recoveries asked for by reconnecting clients, by whether they were complete.", "recovered")
	presentDesc     = desc("present", "Sessions of this hub recorded in presence.")
	transitionsDesc = desc("transitions_total", "Cluster-wide transitions that happened on "+
		"this hub: a user's first session anywhere (kind online), their last (offline).", "kind")
	brokerErrorsDesc = desc("broker_errors_total",
		"Failed broker calls (publish, subscribe, unsubscribe, history, presence).")
	reconnectsDesc   = desc("broker_reconnects_total", "Reconnections of the broker to its backend.")
	sendDurationDesc = desc("send_duration_seconds",
		"Time Send, Publish and Broadcast took, from the call to the broker's acceptance.")
)

var descs = [...]*prometheus.Desc{sessionsDesc, transportDesc, usersDesc, topicsDesc, connectsDesc,
	disconnectsDesc, refusedDesc, sendsDesc, deliveriesDesc, framesDesc, bytesDesc, slowDesc,
	abuseDesc, rateLimitedDesc, recoveriesDesc, presentDesc, transitionsDesc, brokerErrorsDesc,
	sendDurationDesc}

// Describe implements [prometheus.Collector].
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect implements [prometheus.Collector].
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.hub.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}

	gauge(sessionsDesc, s.Sessions)
	ch <- prometheus.MustNewConstMetric(transportDesc, prometheus.GaugeValue, float64(s.Sessions-s.SSESessions), "websocket")
	ch <- prometheus.MustNewConstMetric(transportDesc, prometheus.GaugeValue, float64(s.SSESessions), "sse")
	gauge(usersDesc, s.Users)
	gauge(topicsDesc, s.Topics)

	counter(connectsDesc, s.Connects-s.SSEConnects, "websocket")
	counter(connectsDesc, s.SSEConnects, "sse")
	for code, n := range s.Disconnects {
		label := "other"
		if code != 0 {
			label = strconv.Itoa(int(code))
		}
		sse := s.SSEDisconnects[code]
		counter(disconnectsDesc, n-sse, label, "websocket")
		counter(disconnectsDesc, sse, label, "sse")
	}
	for reason, n := range s.Refused {
		counter(refusedDesc, n, reason)
	}
	counter(sendsDesc, s.Sends, "user")
	counter(sendsDesc, s.Publishes, "topic")
	counter(sendsDesc, s.Broadcasts, "broadcast")
	counter(deliveriesDesc, s.Deliveries)
	counter(framesDesc, s.FramesWritten)
	counter(bytesDesc, s.BytesWritten)
	counter(slowDesc, s.SlowConsumers)
	counter(abuseDesc, s.AbuseCloses)
	counter(rateLimitedDesc, s.RateLimited)
	counter(recoveriesDesc, s.Recovered, "true")
	counter(recoveriesDesc, s.NotRecovered, "false")
	gauge(presentDesc, s.Present)
	counter(transitionsDesc, s.Online, "online")
	counter(transitionsDesc, s.Offline, "offline")
	counter(brokerErrorsDesc, s.BrokerErrors)

	h := s.SendDuration
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			buckets[b.Seconds()] = h.Counts[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(sendDurationDesc, h.Count, h.Sum.Seconds(), buckets)
}
