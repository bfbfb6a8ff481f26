package main

import (
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/node"
)

func ctlStatus(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	var st node.StatusView
	if printed, err := c.call(out, f, http.MethodGet, "/v1/status", nil, nil, &st); printed || err != nil {
		return err
	}
	return printStatus(out, &st)
}

func ctlServices(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	var body admin.ServicesBody
	if printed, err := c.call(out, f, http.MethodGet, "/v1/services", nil, nil, &body); printed || err != nil {
		return err
	}
	return printServices(out, body.Services)
}

func ctlDial(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service, region := args[0], args[1]
	pct, err := strconv.Atoi(strings.TrimSuffix(args[2], "%"))
	if err != nil || pct < 0 || pct > 100 {
		return usagef("PERCENT must be a whole number from 0 to 100, not %q", args[2])
	}
	req := admin.DialsRequest{Dials: map[string]int{region: pct}, Reason: f.reason}
	var sv node.ServiceView
	path := "/v1/services/" + url.PathEscape(service) + "/dials"
	if printed, err := c.call(out, f, http.MethodPatch, path, nil, req, &sv); printed || err != nil {
		return err
	}
	if err := printf(out, "%s: dial of %s set to %d%%\n\n", sv.Name, region, pct); err != nil {
		return err
	}
	return printServices(out, []node.ServiceView{sv})
}

func ctlOverride(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	region, health := args[0], args[1]
	switch health {
	case "up", "down", "auto":
	default:
		return usagef("health must be up, down or auto, not %q", health)
	}
	req := admin.OverrideRequest{Health: health, Reason: f.reason}
	var rv node.RegionView
	path := "/v1/regions/" + url.PathEscape(region) + "/override"
	if printed, err := c.call(out, f, http.MethodPost, path, nil, req, &rv); printed || err != nil {
		return err
	}
	if err := printf(out, "region %s: override %s\n\n", rv.Name, rv.Override); err != nil {
		return err
	}
	return printRegions(out, []node.RegionView{rv})
}

func ctlExplain(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service, client := args[0], args[1]
	if _, err := netip.ParseAddr(client); err != nil {
		return usagef("CLIENT_IP %q is not an IP address", client)
	}
	q := url.Values{"service": {service}, "client": {client}}
	var ex node.Explanation
	if printed, err := c.call(out, f, http.MethodGet, "/v1/explain", q, nil, &ex); printed || err != nil {
		return err
	}
	return printExplain(out, &ex)
}

func ctlAudit(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	var q url.Values
	if f.set["limit"] {
		if f.limit < 1 {
			return usagef("--limit must be at least 1, not %d", f.limit)
		}
		q = url.Values{"limit": {strconv.Itoa(f.limit)}}
	}
	var body admin.AuditBody
	if printed, err := c.call(out, f, http.MethodGet, "/v1/audit", q, nil, &body); printed || err != nil {
		return err
	}
	return printAudit(out, body.Entries)
}

func ctlReload(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	var st node.StatusView
	req := admin.ReloadRequest{Reason: f.reason}
	if printed, err := c.call(out, f, http.MethodPost, "/v1/reload", nil, req, &st); printed || err != nil {
		return err
	}
	return printf(out, "config reloaded: generation %d\n", st.Generation)
}
