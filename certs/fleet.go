package certs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys of a fleet's certificate state, under the fleet's etcd prefix
// (state.etcd.prefix).
const (
	FleetStorageDir    = "certs/"                  // EtcdStorage: data/, mtime/, locks/
	FleetRecordsDir    = "acme-dns/"               // EtcdTXT: FQDN/NODE/HASH = TXT value
	FleetTicketKeysKey = "tls/session-ticket-keys" // TicketKeys: JSON, newest key first
)

// FleetOptions are what a node of a fleet brings to its certificates.
type FleetOptions struct {
	Client *clientv3.Client // the node's etcd client; the caller closes it after Stop
	Prefix string           // state.etcd.prefix, "/meridian/"
	Node   string           // this node's name, in lock values and record keys
	DNS    TXTPublisher     // this node's DNS server, which serves the fleet's records
	Logger *slog.Logger     // nil = slog.Default()
}

// Fleet is the certificate state a node shares with its fleet through
// etcd: the certificate storage, the DNS-01 challenge records and the TLS
// session ticket keys. A node builds one when state.backend is etcd,
// starts it before its certificate Manager, passes it to the Manager with
// Apply, and stops it after the Manager.
type Fleet struct {
	Storage *EtcdStorage
	Records *EtcdTXT
	Tickets *TicketKeys
}

// NewFleet prepares the fleet's certificate state under o.Prefix. It
// starts nothing: Start does.
func NewFleet(o FleetOptions) (*Fleet, error) {
	if o.Client == nil {
		return nil, errors.New("fleet certificates: no etcd client")
	}
	p, err := cleanPrefix(o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("fleet certificates: %w", err)
	}
	f := &Fleet{}
	if f.Storage, err = NewEtcdStorage(o.Client, p+FleetStorageDir, EtcdStorageOptions{Owner: o.Node, Logger: o.Logger}); err != nil {
		return nil, err
	}
	if f.Records, err = NewEtcdTXT(o.Client, p+FleetRecordsDir, o.DNS, EtcdTXTOptions{Owner: o.Node, Logger: o.Logger}); err != nil {
		return nil, err
	}
	if f.Tickets, err = NewTicketKeys(o.Client, p+FleetTicketKeysKey, TicketKeysOptions{Logger: o.Logger}); err != nil {
		return nil, err
	}
	return f, nil
}

// Start runs the record mirror and the ticket keys. Neither waits for an
// unreachable etcd beyond a few seconds: they catch up when it answers.
func (f *Fleet) Start(ctx context.Context) error {
	if err := f.Records.Start(ctx); err != nil {
		return err
	}
	if err := f.Tickets.Start(ctx); err != nil {
		f.Records.Stop()
		return err
	}
	return nil
}

// Apply points a Manager's options at the fleet: records, storage and
// ticket keys.
func (f *Fleet) Apply(o Options) Options {
	o.TXT = f.Records
	o.Storage = f.Storage
	o.TicketKeys = f.Tickets
	return o
}

// Stop ends the mirror and the ticket keys, withdraws this node's
// challenge records and releases its locks. Safe before Start and more
// than once.
func (f *Fleet) Stop() {
	f.Tickets.Stop()
	f.Records.Stop()
	f.Storage.Close()
}
