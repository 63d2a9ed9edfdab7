package localnet

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rainp2p/rainp2p/p2p"
)

// Report is the outcome of a run. It marshals to the JSON that
// `rainp2p localnet --json` prints.
type Report struct {
	// OK is true when every live node delivered every message meant for
	// it exactly once, and nothing else of the run's messages.
	OK         bool `json:"ok"`
	Broadcasts int  `json:"broadcasts"`
	Unicasts   int  `json:"unicasts"`
	// Expected counts (live node, message) pairs: every live node but the
	// origin for a broadcast, the target for a unicast.
	Expected int `json:"expected"`
	// Delivered counts expected pairs delivered at least once; Missing the
	// rest.
	Delivered int `json:"delivered"`
	Missing   int `json:"missing"`
	// DuplicateDeliveries counts deliveries beyond the first of one
	// message at one node; the module's deduper should make it 0.
	DuplicateDeliveries int `json:"duplicate_deliveries"`
	// Unexpected counts deliveries to a node the message was not meant
	// for (a broadcast back to its origin, a unicast to someone else).
	Unexpected int `json:"unexpected"`
	// DuplicatesSuppressed is the sum of the nodes' deduper counters:
	// copies the routers brought and the module dropped.
	DuplicatesSuppressed uint64        `json:"duplicates_suppressed"`
	Latency              Latency       `json:"latency_ms"`
	Nodes                []NodeReport  `json:"nodes"`
	MissingDetail        []MissingPair `json:"missing_detail,omitempty"`
	Errors               []string      `json:"errors,omitempty"`
	// Dir is the kept network directory, set when the run failed.
	Dir string `json:"dir,omitempty"`
}

// Latency summarises receive time minus send time, in milliseconds, over
// the first delivery of each expected pair.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// NodeReport is one node's share of the run.
type NodeReport struct {
	Name    string `json:"name"`
	Role    Role   `json:"role"`
	State   State  `json:"state"`
	Address string `json:"address"`
	// Expected and Received count the messages meant for this node and
	// those it delivered; ViaRainTree and ViaBackground split its
	// deliveries of the run's messages by router.
	Expected             int     `json:"expected"`
	Received             int     `json:"received"`
	ViaRainTree          int     `json:"via_raintree"`
	ViaBackground        int     `json:"via_background"`
	DuplicateDeliveries  int     `json:"duplicate_deliveries"`
	DuplicatesSuppressed uint64  `json:"duplicates_suppressed"`
	LatencyP50           float64 `json:"latency_p50_ms"`
	LatencyMax           float64 `json:"latency_max_ms"`
	AdminURL             string  `json:"admin_url,omitempty"`
	Log                  string  `json:"log,omitempty"`
}

// MissingPair is an expected delivery that did not happen.
type MissingPair struct {
	Node    string `json:"node"`
	Kind    string `json:"kind"`
	Seq     int    `json:"seq"`
	From    string `json:"from"`
	Nonce   string `json:"nonce"`
	Message string `json:"message"`
}

// report compares what was sent with what each node delivered.
func (n *Network) report(ctx context.Context, msgs []*message, got map[*Node]history) *Report {
	live := n.Live()
	rep := &Report{Broadcasts: n.count(msgs, KindBroadcast), Unicasts: n.count(msgs, KindUnicast)}
	byNode := map[*Node]*NodeReport{}
	lat := map[*Node][]float64{}
	var all []float64
	for _, nd := range n.nodes {
		nr := &NodeReport{Name: nd.Name, Role: nd.Role, State: nd.State(), Address: nd.Address.String()}
		if nd.Live() {
			nr.AdminURL, nr.Log = nd.AdminURL(), nd.LogPath()
		}
		byNode[nd] = nr
	}
	for _, m := range msgs {
		if m.nonce == "" {
			continue
		}
		meant := map[*Node]bool{}
		for _, r := range m.receivers(live) {
			meant[r] = true
			nr := byNode[r]
			nr.Expected++
			rep.Expected++
			ds := got[r][m.nonce]
			if len(ds) == 0 {
				rep.Missing++
				rep.MissingDetail = append(rep.MissingDetail, MissingPair{
					Node: r.Name, Kind: m.kind, Seq: m.seq, From: m.from.Name, Nonce: m.nonce, Message: m.String()})
				continue
			}
			rep.Delivered++
			nr.Received++
			ms := math.Round(float64(ds[0].ReceivedUnixNS-m.sentNS)/float64(time.Microsecond)) / 1000
			lat[r] = append(lat[r], ms)
			all = append(all, ms)
		}
		for _, nd := range live {
			ds := got[nd][m.nonce]
			for _, d := range ds {
				switch p2p.RouterName(d.Router) {
				case p2p.RouterRainTree:
					byNode[nd].ViaRainTree++
				default:
					byNode[nd].ViaBackground++
				}
			}
			switch {
			case !meant[nd]:
				rep.Unexpected += len(ds)
			case len(ds) > 1:
				byNode[nd].DuplicateDeliveries += len(ds) - 1
				rep.DuplicateDeliveries += len(ds) - 1
			}
		}
	}
	for _, nd := range live {
		nr := byNode[nd]
		nr.LatencyP50, nr.LatencyMax = percentile(lat[nd], 50), percentile(lat[nd], 100)
		if exited, _ := nd.exited(); exited || nd.AdminURL() == "" {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.api.status(sctx, nd.AdminURL())
		cancel()
		if err == nil {
			nr.DuplicatesSuppressed = st.Duplicates
			rep.DuplicatesSuppressed += st.Duplicates
		}
	}
	for _, nd := range n.nodes {
		rep.Nodes = append(rep.Nodes, *byNode[nd])
		if s := byNode[nd].State; s == StateExited {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s exited during the run (log %s)", nd.Name, nd.LogPath()))
		}
	}
	rep.Latency = Latency{P50: percentile(all, 50), P99: percentile(all, 99), Max: percentile(all, 100)}
	rep.OK = rep.Missing == 0 && rep.DuplicateDeliveries == 0 && rep.Unexpected == 0 && len(rep.Errors) == 0
	return rep
}

// percentile is the nearest-rank percentile p of xs, 0 for none.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// explain writes the failure details and the failing nodes' log tails to
// the progress writer.
func (n *Network) explain(rep *Report) {
	byName := map[string][]string{}
	var order []string
	for _, mp := range rep.MissingDetail {
		if _, ok := byName[mp.Node]; !ok {
			order = append(order, mp.Node)
		}
		byName[mp.Node] = append(byName[mp.Node], mp.Message)
	}
	for _, name := range order {
		n.logf("%s missed %d message(s):\n  %s", name, len(byName[name]), strings.Join(byName[name], "\n  "))
	}
	for _, e := range rep.Errors {
		n.logf("error: %s", e)
	}
	for _, nd := range n.nodes {
		nr := rep.node(nd.Name)
		if nd.Live() && nr != nil && (nr.Received < nr.Expected || nr.DuplicateDeliveries > 0 || nr.State == StateExited) {
			n.logf("--- last lines of %s ---\n%s", nd.LogPath(), nd.tail(15))
		}
	}
}

func (r *Report) node(name string) *NodeReport {
	for i := range r.Nodes {
		if r.Nodes[i].Name == name {
			return &r.Nodes[i]
		}
	}
	return nil
}

// WriteTable prints the report as a table followed by a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tRECEIVED\tVIA RAINTREE\tVIA BACKGROUND\tDUPS SUPPRESSED\tLATENCY P50\tLATENCY MAX")
	for _, nr := range r.Nodes {
		if nr.State == StateDown {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\n", nr.Name, nr.Role, nr.State)
			continue
		}
		recv := fmt.Sprintf("%d/%d", nr.Received, nr.Expected)
		if nr.DuplicateDeliveries > 0 {
			recv += fmt.Sprintf(" (+%d dup)", nr.DuplicateDeliveries)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", nr.Name, nr.Role, nr.State, recv,
			nr.ViaRainTree, nr.ViaBackground, nr.DuplicatesSuppressed, ms(nr.LatencyP50, nr.Received), ms(nr.LatencyMax, nr.Received))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	_, err := fmt.Fprintf(w, "\n%s: %d/%d deliveries (%s, %s), %d missing, %d duplicate, %d unexpected; "+
		"%d duplicates suppressed; latency p50 %s, p99 %s, max %s\n",
		verdict, r.Delivered, r.Expected, plural(r.Broadcasts, "broadcast"), plural(r.Unicasts, "unicast"),
		r.Missing, r.DuplicateDeliveries, r.Unexpected,
		r.DuplicatesSuppressed, ms(r.Latency.P50, r.Delivered), ms(r.Latency.P99, r.Delivered), ms(r.Latency.Max, r.Delivered))
	return err
}

func ms(v float64, samples int) string {
	if samples == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
