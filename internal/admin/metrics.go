package admin

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	feedDroppedDesc = prometheus.NewDesc("rainp2p_admin_stream_dropped_total",
		"Deliveries a slow /v1/messages subscriber missed (message count or byte budget full).", nil, nil)
	feedEvictedDesc = prometheus.NewDesc("rainp2p_admin_history_evicted_total",
		"Deliveries evicted from the admin history to stay within its limit.", nil, nil)
	unauthorizedDesc = prometheus.NewDesc("rainp2p_admin_unauthorized_total",
		"State-changing admin requests refused for a missing or wrong bearer token.", nil, nil)
	connsCappedDesc = prometheus.NewDesc("rainp2p_admin_conns_capped_total",
		"Times the admin listener waited because MaxConns connections were open.", nil, nil)
	streamsCutDesc = prometheus.NewDesc("rainp2p_admin_streams_cut_total",
		"/v1/messages streams ended because an event could not be written in time.", nil, nil)
)

type feedCollector struct{ f *Feed }

// NewFeedCollector exports the feed's drop counters.
func NewFeedCollector(f *Feed) prometheus.Collector { return feedCollector{f} }

func (c feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- feedDroppedDesc
	ch <- feedEvictedDesc
}

func (c feedCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(feedDroppedDesc, prometheus.CounterValue, float64(c.f.Dropped()))
	ch <- prometheus.MustNewConstMetric(feedEvictedDesc, prometheus.CounterValue, float64(c.f.Evicted()))
}

type serverCounters struct {
	unauthorized, connsCapped, streamsCut atomic.Uint64
}

// ServerStats is a snapshot of the server's own counters.
type ServerStats struct {
	Unauthorized, ConnsCapped, StreamsCut uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Unauthorized: s.c.unauthorized.Load(),
		ConnsCapped:  s.c.connsCapped.Load(),
		StreamsCut:   s.c.streamsCut.Load(),
	}
}

type serverCollector struct{ s *Server }

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- unauthorizedDesc
	ch <- connsCappedDesc
	ch <- streamsCutDesc
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(unauthorizedDesc, prometheus.CounterValue, float64(st.Unauthorized))
	ch <- prometheus.MustNewConstMetric(connsCappedDesc, prometheus.CounterValue, float64(st.ConnsCapped))
	ch <- prometheus.MustNewConstMetric(streamsCutDesc, prometheus.CounterValue, float64(st.StreamsCut))
}
