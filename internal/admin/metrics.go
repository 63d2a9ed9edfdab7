package admin

import "github.com/prometheus/client_golang/prometheus"

var (
	feedDroppedDesc = prometheus.NewDesc("rainp2p_admin_stream_dropped_total",
		"Deliveries a slow /v1/messages subscriber missed.", nil, nil)
	feedEvictedDesc = prometheus.NewDesc("rainp2p_admin_history_evicted_total",
		"Deliveries evicted from the admin history to stay within its limit.", nil, nil)
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
