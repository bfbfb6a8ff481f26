package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/node"
)

func ctlDrain(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	return ctlSetDrained(c, out, f, "/v1/node/drain")
}

func ctlUndrain(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	return ctlSetDrained(c, out, f, "/v1/node/undrain")
}

func ctlSetDrained(c *ctlClient, out io.Writer, f *ctlFlags, path string) error {
	var dv node.DrainView
	req := admin.DrainRequest{Reason: f.reason}
	if printed, err := c.call(out, f, http.MethodPost, path, nil, req, &dv); printed || err != nil {
		return err
	}
	state := "serving again once ready"
	if dv.Drained {
		state = "drained: readiness 503"
	}
	if dv.Announced != nil {
		if *dv.Announced {
			state += ", bgp prefixes announced"
		} else {
			state += ", bgp prefixes withdrawn"
		}
	}
	return printf(out, "node %s: %s\n", dv.Node, state)
}

// printAnycast writes the drain state and the BGP sessions of a status.
func printAnycast(out io.Writer, st *node.StatusView) error {
	if st.Drained == nil && st.BGP == nil {
		return nil
	}
	t := newTable(out)
	if d := st.Drained; d != nil {
		t.row("drained\tsince %s by %s: %s", d.Since.Format(time.RFC3339), orDash(d.Token), orDash(d.Reason))
	}
	if b := st.BGP; b != nil {
		prefixes := make([]string, len(b.Prefixes))
		for i, p := range b.Prefixes {
			prefixes[i] = p.String()
		}
		state := "announced"
		if !b.Announced {
			state = "withdrawn: " + b.Reason
			if !b.HoldDown.IsZero() {
				state += " until " + b.HoldDown.Format(time.RFC3339)
			}
		}
		t.row("bgp\tAS%d, router id %s, %s", b.ASN, b.RouterID, state)
		t.row("prefixes\t%s", strings.Join(prefixes, " "))
		sc := "passing"
		if !b.SelfCheck.Passing {
			sc = "failing: " + orDash(b.SelfCheck.LastError)
		}
		t.row("self-check\t%s", sc)
	}
	t.row("")
	if b := st.BGP; b != nil && len(b.Peers) > 0 {
		t.row("PEER\tASN\tTYPE\tSTATE\tUPTIME\tLAST ERROR")
		for _, p := range b.Peers {
			t.row("%s\t%d\t%s\t%s\t%s\t%s", bgpPeerAddr(p.Address, p.Port), p.ASN, p.Type, p.State, orDash(p.Uptime), orDash(oneLine(p.LastError)))
		}
		t.row("")
	}
	return t.flush()
}

func bgpPeerAddr(addr string, port int) string {
	return net.JoinHostPort(addr, strconv.Itoa(port))
}
