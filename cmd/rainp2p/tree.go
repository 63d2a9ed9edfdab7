package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/sim"
)

// treePrintLimit is the largest set whose tree and node table are printed
// without --full.
const treePrintLimit = 100

// treeMaxSize bounds --size: the plan, the per-node table and the JSON
// output (buffered whole by the encoder) take memory in proportion to it,
// about 150 bytes per validator with --json. It is a tenth of the bound
// `sim --plan` puts on --validators, which keeps no per-node output.
const treeMaxSize = sim.MaxPlanValidators / 10

var errBadTreeFlag = errors.New("invalid tree flag")

func init() { rootCmd.AddCommand(newTreeCmd()) }

type treeFlags struct {
	size   int
	origin int
	mode   string
	json   bool
	full   bool
	perHop int
}

func newTreeCmd() *cobra.Command {
	var f treeFlags
	cmd := &cobra.Command{
		Use:   "tree [--size N] [--origin I] [--mode cover|reference] [--levels-per-hop P] [--json]",
		Short: "Print the RainTree propagation plan for a validator set",
		Long: `Print who sends to whom when validator I broadcasts to a set of N validators,
with per-node network reads and writes and a summary. Ids are 1-based positions
in the set sorted by address. Mode "cover" (default) reaches every validator;
mode "reference" is the published RainTree rule, holes included. In cover mode,
--levels-per-hop 2 shows the tree a node uses for messages below PaceBytes in
sets up to 729 validators: each hop runs two ternary levels at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTree(cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.size, "size", 27, "number of validators")
	fl.IntVar(&f.origin, "origin", 1, "1-based id of the originator")
	fl.StringVar(&f.mode, "mode", string(raintree.ModeCover), "cover or reference")
	fl.IntVar(&f.perHop, "levels-per-hop", 1, fmt.Sprintf("cover mode: ternary levels per hop, 1 to %d", raintree.MaxLevelsPerHop))
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of text")
	fl.BoolVar(&f.full, "full", false, fmt.Sprintf("print the tree and node table even above %d validators", treePrintLimit))
	return cmd
}

func runTree(w io.Writer, f treeFlags) error {
	mode, err := raintree.ParseMode(f.mode)
	if err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	if f.size < 1 || f.size > treeMaxSize {
		return fmt.Errorf("%w: --size must be between 1 and %d, got %d", errBadTreeFlag, treeMaxSize, f.size)
	}
	if f.origin < 1 || f.origin > f.size {
		return fmt.Errorf("%w: --origin must be between 1 and %d, got %d", errBadTreeFlag, f.size, f.origin)
	}
	if f.perHop < 1 || f.perHop > raintree.MaxLevelsPerHop {
		return fmt.Errorf("%w: --levels-per-hop must be between 1 and %d, got %d", errBadTreeFlag, raintree.MaxLevelsPerHop, f.perHop)
	}
	if f.perHop > 1 && mode != raintree.ModeCover {
		return fmt.Errorf("%w: --levels-per-hop %d needs --mode cover (reference runs one level per hop)", errBadTreeFlag, f.perHop)
	}
	detailed := !f.json && (f.full || f.size <= treePrintLimit)
	plan := raintree.Broadcast(f.size, f.origin-1, mode, raintree.Options{RecordEdges: detailed, LevelsPerHop: f.perHop})

	bw := bufio.NewWriterSize(w, 1<<16)
	if f.json {
		err = writeTreeJSON(bw, plan, f.perHop)
	} else {
		err = writeTreeText(bw, plan, detailed)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

type treeJSON struct {
	Size            int            `json:"size"`
	Origin          int            `json:"origin"`
	Mode            raintree.Mode  `json:"mode"`
	Levels          int            `json:"levels"`
	LevelsPerHop    int            `json:"levels_per_hop"`
	Messages        int            `json:"messages"`
	LastDeliveryHop int            `json:"last_delivery_hop"`
	Uncovered       []int          `json:"uncovered"`
	Nodes           []treeNodeJSON `json:"nodes"`
}

type treeNodeJSON struct {
	ID     int `json:"id"`
	Reads  int `json:"reads"`
	Writes int `json:"writes"`
}

func writeTreeJSON(w io.Writer, p raintree.Plan, perHop int) error {
	out := treeJSON{
		Size:            p.Size,
		Origin:          p.Origin + 1,
		Mode:            p.Mode,
		Levels:          p.Levels,
		LevelsPerHop:    perHop,
		Messages:        p.Messages,
		LastDeliveryHop: p.LastDeliveryHop,
		Uncovered:       oneBased(p.Uncovered),
		Nodes:           make([]treeNodeJSON, p.Size),
	}
	for i := range p.Size {
		out.Nodes[i] = treeNodeJSON{ID: i + 1, Reads: p.Reads[i], Writes: p.Writes[i]}
	}
	if err := json.NewEncoder(w).Encode(out); err != nil {
		return fmt.Errorf("encoding plan: %w", err)
	}
	return nil
}

func writeTreeText(w *bufio.Writer, p raintree.Plan, detailed bool) error {
	fmt.Fprintf(w, "RainTree plan: %d validators, origin %d, mode %s\n\n", p.Size, p.Origin+1, p.Mode)
	if detailed {
		if err := p.WriteTree(w); err != nil {
			return fmt.Errorf("writing tree: %w", err)
		}
		w.WriteString("\nnode  reads  writes\n")
		for i := range p.Size {
			fmt.Fprintf(w, "%4d  %5d  %6d\n", i+1, p.Reads[i], p.Writes[i])
		}
	} else {
		fmt.Fprintf(w, "(tree and per-node table skipped above %d validators; use --full or --json)\n", treePrintLimit)
	}
	uncovered := "none"
	if len(p.Uncovered) > 0 {
		uncovered = fmt.Sprintf("%d: %s", len(p.Uncovered), idList(oneBased(p.Uncovered), 50))
	}
	fmt.Fprintf(w, "\nlevels             %d\n", p.Levels)
	fmt.Fprintf(w, "messages           %d\n", p.Messages)
	fmt.Fprintf(w, "last delivery hop  %d\n", p.LastDeliveryHop)
	fmt.Fprintf(w, "uncovered          %s\n", uncovered)
	return nil
}

func oneBased(idx []int) []int {
	ids := make([]int, len(idx))
	for i, x := range idx {
		ids[i] = x + 1
	}
	return ids
}

// idList joins ids, eliding all but the first limit.
func idList(ids []int, limit int) string {
	parts := make([]string, 0, min(len(ids), limit)+1)
	for _, id := range ids[:min(len(ids), limit)] {
		parts = append(parts, strconv.Itoa(id))
	}
	if len(ids) > limit {
		parts = append(parts, fmt.Sprintf("… (%d more)", len(ids)-limit))
	}
	return strings.Join(parts, " ")
}
