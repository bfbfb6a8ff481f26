package anycast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/meridian-edge/meridian/config"
)

// connectRetry is how often a session that is down is tried again. GoBGP's
// default (120 s) would keep a node dark long after its router came back.
const connectRetry = 5 * time.Second

// Speaker is an in-process BGP speaker that announces a fixed set of
// prefixes to its peers, or none.
type Speaker struct {
	log   *slog.Logger
	now   func() time.Time
	cfg   *config.BGP
	srv   *server.BgpServer
	paths []*apiutil.Path

	mu        sync.Mutex
	started   bool
	announced bool
	peers     map[netip.Addr]*peerState
	cancel    context.CancelFunc
}

// peerState is what the speaker knows of one session.
type peerState struct {
	cfg       config.BGPPeer
	state     bgp.FSMState
	since     time.Time // when the session entered state
	lastError string
}

// NewSpeaker prepares a speaker for cfg; nothing is bound or dialled
// until Start. log and now may be nil.
func NewSpeaker(cfg *config.BGP, log *slog.Logger, now func() time.Time) (*Speaker, error) {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	paths, err := buildPaths(cfg)
	if err != nil {
		return nil, err
	}
	s := &Speaker{log: log.With("component", "bgp"), now: now, cfg: cfg, paths: paths, peers: map[netip.Addr]*peerState{}}
	for _, p := range cfg.Peers {
		s.peers[p.Address] = &peerState{cfg: p, state: bgp.BGP_FSM_IDLE}
	}
	return s, nil
}

// buildPaths turns the announced prefixes into GoBGP paths: origin IGP,
// the configured communities, and a next hop that is the configured one
// of the prefix's family or else unspecified, which GoBGP replaces with
// each session's local address.
func buildPaths(cfg *config.BGP) ([]*apiutil.Path, error) {
	var std []uint32
	var large []*bgp.LargeCommunity
	for _, s := range cfg.Communities {
		c, err := config.ParseCommunity(s)
		if err != nil {
			return nil, err
		}
		if c.Large {
			large = append(large, bgp.NewLargeCommunity(c.Parts[0], c.Parts[1], c.Parts[2]))
		} else {
			std = append(std, c.Standard)
		}
	}
	nh4, nh6 := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	for _, a := range cfg.NextHop {
		if a.Is4() {
			nh4 = a
		} else {
			nh6 = a
		}
	}
	var out []*apiutil.Path
	for _, p := range cfg.Announce {
		nlri, err := bgp.NewIPAddrPrefix(p)
		if err != nil {
			return nil, fmt.Errorf("prefix %s: %w", p, err)
		}
		attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
		fam := bgp.RF_IPv4_UC
		if p.Addr().Is4() {
			nh, err := bgp.NewPathAttributeNextHop(nh4)
			if err != nil {
				return nil, fmt.Errorf("next hop %s: %w", nh4, err)
			}
			attrs = append(attrs, nh)
		} else {
			fam = bgp.RF_IPv6_UC
			mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh6)
			if err != nil {
				return nil, fmt.Errorf("next hop %s: %w", nh6, err)
			}
			attrs = append(attrs, mp)
		}
		if len(std) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeCommunities(std))
		}
		if len(large) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
		}
		out = append(out, &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs})
	}
	return out, nil
}

// Start runs the BGP server and configures every peer. Sessions come up
// in the background; nothing is announced until Announce.
func (s *Speaker) Start(ctx context.Context) error {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	s.srv = server.NewBgpServer(server.LoggerOption(s.log, lvl))
	go s.srv.Serve()
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	global := &api.Global{
		Asn:        uint32(s.cfg.ASN), //nolint:gosec // G115: config validates 1..2^32-1
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: int32(s.cfg.ListenPort), //nolint:gosec // G115: config validates -1 or 1..65535
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("starting bgp: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	if err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeer}, server.WatchPeer()); err != nil {
		return fmt.Errorf("watching bgp sessions: %w", err)
	}
	for _, p := range s.cfg.Peers {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)}); err != nil {
			return fmt.Errorf("adding bgp peer %s: %w", p.Address, err)
		}
	}
	return nil
}

// apiPeer is the GoBGP form of one configured session, with the unicast
// families it carries enabled explicitly.
func (s *Speaker) apiPeer(p config.BGPPeer) *api.Peer {
	hold := uint64(p.HoldTime.D() / time.Second) //nolint:gosec // G115: config validates 0 or 3..65535 s
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         uint32(p.ASN), //nolint:gosec // G115: config validates 1..2^32-1
			AuthPassword:    p.Password,
			Description:     "meridian",
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(connectRetry / time.Second),
			HoldTime:          hold,
			KeepaliveInterval: hold / 3,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)}, //nolint:gosec // G115: config validates 1..65535
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.Multihop > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)} //nolint:gosec // G115: config validates 0..255
	}
	// A session carries its own family, and the other one only with a
	// next hop of that family configured: its own address cannot be one.
	v4, v6 := false, false
	var nh4, nh6 bool
	for _, a := range s.cfg.NextHop {
		nh4, nh6 = nh4 || a.Is4(), nh6 || a.Is6()
	}
	for _, pr := range s.cfg.Announce {
		v4 = v4 || (pr.Addr().Is4() && (p.Address.Is4() || nh4))
		v6 = v6 || (pr.Addr().Is6() && (p.Address.Is6() || nh6))
	}
	if v4 {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
	}
	if v6 {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
	}
	return ap
}

// onPeer records a session's state change and logs it once.
func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.Conf.NeighborAddress
	}
	s.mu.Lock()
	ps := s.peers[addr.Unmap()]
	if ps == nil || ps.state == ev.Peer.State.SessionState {
		s.mu.Unlock()
		return
	}
	old, cur := ps.state, ev.Peer.State.SessionState
	ps.state, ps.since = cur, s.now()
	if msg := ev.Peer.State.DisconnectMessage; msg != "" {
		ps.lastError = msg
	}
	s.mu.Unlock()
	if cur == bgp.BGP_FSM_ESTABLISHED || old == bgp.BGP_FSM_ESTABLISHED {
		s.log.Info("bgp session changed", "peer", addr, "from", stateName(old), "to", stateName(cur))
	} else {
		s.log.Debug("bgp session changed", "peer", addr, "from", stateName(old), "to", stateName(cur))
	}
}

// Announce advertises every prefix to every peer; idempotent.
func (s *Speaker) Announce() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.announced {
		return nil
	}
	if !s.started {
		return errors.New("bgp speaker is not running")
	}
	if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: s.paths}); err != nil {
		return fmt.Errorf("announcing prefixes: %w", err)
	}
	s.announced = true
	return nil
}

// Withdraw takes every prefix back from every peer; idempotent.
func (s *Speaker) Withdraw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.announced {
		return nil
	}
	if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: s.paths}); err != nil {
		return fmt.Errorf("withdrawing prefixes: %w", err)
	}
	s.announced = false
	return nil
}

// Announced reports whether the prefixes are being advertised.
func (s *Speaker) Announced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.announced
}

// PeerStatus is one session as /v1/status shows it.
type PeerStatus struct {
	Address   string    `json:"address"`
	Port      int       `json:"port"`
	ASN       int64     `json:"asn"`
	Type      string    `json:"type"`  // ebgp or ibgp
	State     string    `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Up        bool      `json:"up"`
	Since     time.Time `json:"since,omitzero"`   // when the session entered its state
	Uptime    string    `json:"uptime,omitempty"` // while established
	LastError string    `json:"last_error,omitempty"`
}

// Peers lists every session in configuration order.
func (s *Speaker) Peers() []PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]PeerStatus, 0, len(s.cfg.Peers))
	for _, p := range s.cfg.Peers {
		ps := s.peers[p.Address]
		st := PeerStatus{
			Address: p.Address.String(), Port: p.Port, ASN: p.ASN, Type: "ebgp",
			State: stateName(ps.state), Up: ps.state == bgp.BGP_FSM_ESTABLISHED,
			Since: ps.since, LastError: ps.lastError,
		}
		if p.ASN == s.cfg.ASN {
			st.Type = "ibgp"
		}
		if st.Up {
			st.Uptime = now.Sub(ps.since).Round(time.Second).String()
		}
		out = append(out, st)
	}
	return out
}

// Prefixes are the prefixes the speaker announces when it announces.
func (s *Speaker) Prefixes() []netip.Prefix { return slices.Clone(s.cfg.Announce) }

// Stop closes every session (with a Cease notification) and the server;
// safe after a partial Start and twice.
func (s *Speaker) Stop() {
	s.mu.Lock()
	started, cancel := s.started, s.cancel
	s.started, s.cancel, s.announced = false, nil, false
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if started {
		s.srv.Stop()
	}
}

func stateName(st bgp.FSMState) string {
	switch st {
	case bgp.BGP_FSM_IDLE:
		return "idle"
	case bgp.BGP_FSM_CONNECT:
		return "connect"
	case bgp.BGP_FSM_ACTIVE:
		return "active"
	case bgp.BGP_FSM_OPENSENT:
		return "opensent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "openconfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return "unknown"
}
