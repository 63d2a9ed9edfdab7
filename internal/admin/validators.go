package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/rainp2p/rainp2p/p2p/validators"
)

// ValidatorSets changes a running node's validator set (home.Live
// implements it over the home's files).
type ValidatorSets interface {
	// Current is the height the node stands at and the set in force.
	Current() (uint64, *validators.Set)
	// MoveTo moves the node to a height and applies the set in force there.
	MoveTo(ctx context.Context, height uint64) (*validators.Set, error)
	// Replace makes members the set in force from height, and moves there.
	Replace(ctx context.Context, height uint64, members []validators.GenesisMember) (*validators.Set, error)
}

// WithValidatorSets adds GET and POST /v1/validators over vs. The POST
// changes state, so it needs the bearer token when one is configured.
func WithValidatorSets(vs ValidatorSets) Option {
	return func(s *Server) {
		s.handle(http.MethodGet, "/v1/validators", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, s.validatorsAnswer(vs.Current()))
		}))
		s.handle(http.MethodPost, "/v1/validators", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.changeValidators(w, r, vs)
		}))
	}
}

// validatorsRequest moves the node to Height or, with Validators, replaces
// the set in force from Height (written to validators/<height>.json) and
// moves there.
type validatorsRequest struct {
	Height     *uint64                    `json:"height"`
	Validators []validators.GenesisMember `json:"validators,omitempty"`
}

// validatorsAnswer describes the set in force.
type validatorsAnswer struct {
	Height     uint64   `json:"height"`
	SetHeight  uint64   `json:"set_height"`
	SetHash    string   `json:"set_hash"`
	Role       string   `json:"role"`
	Validators []string `json:"validators"`
}

func (s *Server) validatorsAnswer(height uint64, set *validators.Set) validatorsAnswer {
	a := validatorsAnswer{Height: height, Role: string(s.node.Status().Role), Validators: []string{}}
	if set != nil {
		a.SetHeight, a.SetHash = set.Height(), hex.EncodeToString(set.Hash())
		for _, v := range set.Validators() {
			a.Validators = append(a.Validators, v.Address.String())
		}
	}
	return a
}

func (s *Server) changeValidators(w http.ResponseWriter, r *http.Request, vs ValidatorSets) {
	var req validatorsRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Height == nil {
		writeError(w, http.StatusBadRequest, `"height" is required: {"height": H} moves the node to H; add "validators": [...] to set the validators in force from H`)
		return
	}
	var err error
	if req.Validators != nil {
		_, err = vs.Replace(r.Context(), *req.Height, req.Validators)
	} else {
		_, err = vs.MoveTo(r.Context(), *req.Height)
	}
	switch {
	case errors.Is(err, validators.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, validators.ErrUnknownSet):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("validator set changed through the admin API", "height", *req.Height, "replaced", req.Validators != nil)
	writeJSON(w, http.StatusOK, s.validatorsAnswer(vs.Current()))
}
