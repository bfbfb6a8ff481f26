package node

import (
	"fmt"
	"reflect"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/state"
)

// Reload reads the config file again. A config that does not load or
// validate is refused whole and the old one keeps serving; a good one
// replaces it without dropping a query or a request, and endpoints whose
// settings did not change keep their health.
func (n *Node) Reload(who Actor) error {
	if n.opts.ConfigPath == "" {
		n.m.reloads.WithLabelValues("error").Inc()
		return errorf(ErrInvalid, "this node was not started from a config file")
	}
	cfg, err := config.Load(n.opts.ConfigPath)
	if err != nil {
		n.m.reloads.WithLabelValues("error").Inc()
		n.log.Error("config reload refused; the old config keeps serving", "err", err)
		return errorf(ErrInvalid, "%s", err.Error())
	}
	// Opened before anything changes, so that a path that cannot be
	// written refuses the reload; reopened on every reload, for rotation.
	out, err := openAccessLog(cfg.AccessLog.Path)
	if err == nil {
		if err = n.apply(cfg, who); err != nil && out != nil {
			closeWriter(out)
		}
	}
	if err != nil {
		n.m.reloads.WithLabelValues("error").Inc()
		n.log.Error("config reload refused; the old config keeps serving", "err", err)
		return errorf(ErrInvalid, "%s", err.Error())
	}
	n.access.set(n, out)
	n.m.reloads.WithLabelValues("ok").Inc()
	return nil
}

// apply swaps in a validated config.
func (n *Node) apply(cfg *config.Config, who Actor) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.cfg
	if !reflect.DeepEqual(old.Listen, cfg.Listen) || !reflect.DeepEqual(old.TLS, cfg.TLS) ||
		!reflect.DeepEqual(old.State, cfg.State) {
		n.log.Warn("listener, tls and state settings take effect at the next restart")
	}
	if !reflect.DeepEqual(old.BGP, cfg.BGP) {
		n.log.Warn("bgp settings take effect at the next restart")
	}
	oldGeo := n.geo
	if cfg.GeoIP.Database != n.geoPath {
		db, err := geo.Open(cfg.GeoIP.Database)
		if err != nil {
			return fmt.Errorf("opening geoip database: %w", err)
		}
		n.geo, n.geoPath = db, cfg.GeoIP.Database
	}
	n.health.Update(cfg.Regions)
	n.fo.replicas.Update(cfg.Regions)
	n.cfg, n.cfgHash = cfg, configHash(cfg)
	n.gen++
	if err := n.rebuildLocked(); err != nil {
		// Put everything back as it was.
		n.cfg, n.cfgHash = old, configHash(old)
		n.gen--
		if n.geo != oldGeo {
			_ = n.geo.Close()
			n.geo, n.geoPath = oldGeo, old.GeoIP.Database
		}
		n.health.Update(old.Regions)
		n.fo.replicas.Update(old.Regions)
		if rerr := n.rebuildLocked(); rerr != nil {
			n.log.Error("restoring the old config", "err", rerr)
		}
		return err
	}
	if oldGeo != n.geo {
		// Queries in flight may still hold the old database.
		time.AfterFunc(time.Minute, func() { _ = oldGeo.Close() })
	}
	if err := n.changeLocked(func(*state.Snapshot) error { return nil },
		state.AuditEntry{Token: who.Token, Action: "reload", Target: "config",
			Old: fmt.Sprint(n.gen - 1), New: fmt.Sprint(n.gen), Reason: who.Reason}); err != nil {
		n.log.Warn("writing reload to the audit log", "err", err)
	}
	n.log.Info("config reloaded", "generation", n.gen, "regions", len(cfg.Regions), "services", len(cfg.Services))
	return nil
}
