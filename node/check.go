package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/state"
)

// Check opens, read-only and without binding anything, what Start would
// open for cfg — the GeoIP database and the stored state — and refuses a
// config that gives the node nothing to serve. `meridian validate` runs it
// after config.Load, so that a config it calls good is one run starts.
// Every problem is returned, each prefixed with the config file.
func Check(cfg *config.Config) error {
	var errs []error
	add := func(err error) {
		if cfg.File != "" {
			err = fmt.Errorf("%s: %w", cfg.File, err)
		}
		errs = append(errs, err)
	}
	if err := checkServes(cfg); err != nil {
		add(err)
	}
	if db, err := geo.Open(cfg.GeoIP.Database); err != nil {
		add(fmt.Errorf("geoip.database: %w", err))
	} else {
		_ = db.Close()
	}
	if err := checkState(cfg); err != nil {
		add(err)
	}
	return errors.Join(errs...)
}

// checkServes refuses a config with no DNS or HTTP(S) listener, or with
// neither zones nor services: such a node would bind nothing useful.
func checkServes(cfg *config.Config) error {
	l := cfg.Listen
	if len(l.DNS) == 0 && len(l.HTTP) == 0 && len(l.HTTPS) == 0 {
		return errors.New("nothing to serve: listen.dns, listen.http and listen.https are all empty")
	}
	if len(cfg.Zones) == 0 && len(cfg.Services) == 0 {
		return errors.New("nothing to serve: the config has no zones and no services")
	}
	return nil
}

// checkState reads the stored state the way Start loads it: the file, or
// etcd (and, with etcd away, the copy a node starts from).
func checkState(cfg *config.Config) error {
	switch cfg.State.Backend {
	case "", "file":
		if _, err := state.ReadFile(cfg.State.Path); err != nil {
			return fmt.Errorf("state.path: %w", err)
		}
		return nil
	case "etcd":
		return checkEtcd(cfg)
	}
	return fmt.Errorf("state.backend: %q is not available in this build", cfg.State.Backend)
}

// checkEtcd reads the fleet's state key from etcd within dial_timeout.
// Unreachable, run would start from the copy at state.path, so that is
// read instead; with neither, run refuses to start, and so does this.
func checkEtcd(cfg *config.Config) error {
	cli, err := newEtcdClient(cfg.State.Etcd)
	if err != nil {
		return fmt.Errorf("state.etcd: %w", err)
	}
	defer func() { _ = cli.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.State.Etcd.DialTimeout.D())
	defer cancel()
	_, getErr := cli.Get(ctx, cfg.State.Etcd.Prefix+"state")
	if getErr == nil {
		return nil
	}
	if _, err := os.Stat(cfg.State.Path); err == nil {
		if _, err := state.ReadFile(cfg.State.Path); err != nil {
			return fmt.Errorf("state.path: etcd is unreachable (%v) and the saved fleet state is unreadable: %w", getErr, err)
		}
		return nil // run would serve from the saved copy
	}
	return fmt.Errorf("state.etcd: etcd at %s is unreachable (%v) and there is no saved fleet state at %s: run would refuse to start",
		strings.Join(cfg.State.Etcd.Endpoints, ", "), getErr, cfg.State.Path)
}
