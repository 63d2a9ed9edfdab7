package localnet

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/internal/home"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Running `rainp2p node` processes are given a new validator set, which
// promotes a full node: half through the admin route, half by writing
// validators/<height>.json and the height file and sending SIGHUP. Every
// node takes it without a restart, the promoted node joins RainTree, and
// the network still delivers every message exactly once.
func TestRunningNodesTakeAValidatorSetChangeWithoutRestart(t *testing.T) {
	t.Run("on loopback", func(t *testing.T) { testLiveSetChange(t, false) })
	t.Run("in namespaces", func(t *testing.T) {
		needNetNS(t)
		testLiveSetChange(t, true)
	})
}

func testLiveSetChange(t *testing.T, inNamespaces bool) {
	cfg := testConfig(t)
	cfg.NetNS = inNamespaces
	cfg.Validators, cfg.FullNodes = 3, 2
	ctx := t.Context()
	n, err := Start(ctx, cfg, &testWriter{t: t})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer n.Close()
	nodes := n.Nodes()
	promoted := nodes[3]
	pids := livePIDs(t, n)

	g, _, err := validators.LoadGenesis(filepath.Join(nodes[0].Dir, home.GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := validators.Member(promoted.pub, []ma.Multiaddr{ma.StringCast(strings.TrimSuffix(promoted.Multiaddr(), "/p2p/"+promoted.PeerID.String()))})
	if err != nil {
		t.Fatal(err)
	}
	const height = 10
	next := validators.Genesis{Height: height, Validators: append(g.Validators, m)}

	for i, nd := range nodes {
		if i%2 == 0 {
			var ans struct {
				Height    uint64 `json:"height"`
				SetHeight uint64 `json:"set_height"`
			}
			if err := n.api.do(ctx, http.MethodPost, nd.AdminURL()+"/v1/validators", map[string]any{"height": height, "validators": next.Validators}, &ans); err != nil {
				t.Fatalf("%s: POST /v1/validators: %v", nd.Name, err)
			}
			if ans.Height != height || ans.SetHeight != height {
				t.Fatalf("%s answered %+v", nd.Name, ans)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Join(nd.Dir, home.SetsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := home.ReplaceJSON(filepath.Join(nd.Dir, home.SetsDir, "10.json"), next); err != nil {
			t.Fatal(err)
		}
		if err := home.WriteHeight(nd.Dir, height); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(nd.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for {
			st, err := n.api.status(ctx, nd.AdminURL())
			if err == nil && st.ValidatorSetHeight == height && st.ValidatorSetSize == 4 &&
				(nd != promoted || st.Role == "validator" && st.Peers["raintree"] == 3) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never took the new set: %+v %v\nlog:\n%s", nd.Name, st, err, nd.tail(20))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i, nd := range n.Live() {
		if nd.PID() != pids[i] {
			t.Fatalf("%s was restarted", nd.Name)
		} else if exited, _ := nd.exited(); exited {
			t.Fatalf("%s exited:\n%s", nd.Name, nd.tail(20))
		}
	}

	treeFrames := func() float64 {
		for k, v := range scrapeCountersVia(t, n.api.http, promoted.AdminURL()) {
			if strings.HasPrefix(k, "rainp2p_messages_received_total") && strings.Contains(k, `kind="broadcast"`) && strings.Contains(k, `router="raintree"`) {
				return v
			}
		}
		return 0
	}
	before := treeFrames()
	rep, err := n.Exercise(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Missing != 0 || rep.DuplicateDeliveries != 0 {
		t.Fatalf("after the change: %+v", rep)
	}
	if treeFrames() <= before {
		t.Fatalf("the promoted node received no RainTree frames after joining the set")
	}
}
