package config

func (v *validator) zoneList(c *Config) {
	names := map[string]string{}
	for i := range c.Zones {
		z := &c.Zones[i]
		p := itemPath("zones", i)
		who := subject("zone", z.Name, p)
		switch {
		case z.Name == "":
			v.add(p, "%s: name is required", p)
		case !validDomain(z.Name):
			v.add(p+".name", "zone %q: invalid zone name", z.Name)
		default:
			if first, dup := names[z.Name]; dup {
				v.add(p+".name", "duplicate zone %q%s", z.Name, v.firstAt(first))
			} else {
				names[z.Name] = p + ".name"
			}
		}
		if len(z.Nameservers) == 0 {
			v.add(p+".nameservers", "%s: no nameservers", who)
		}
		for j, ns := range z.Nameservers {
			if !validDomain(ns) {
				v.add(itemPath(p+".nameservers", j), "%s: nameserver %q is not a valid host name", who, ns)
			}
		}
		// The default email derives from the zone name: report a bad name once.
		derived := z.SOA.Email == "hostmaster@"+z.Name
		v.soa(&z.SOA, p+".soa", who, !derived || validDomain(z.Name))
	}
}

func (v *validator) soa(s *SOA, p, who string, checkEmail bool) {
	if checkEmail && !validEmail(s.Email) {
		v.add(p+".email", "%s: soa.email %q is not an email address", who, s.Email)
	}
	v.checkTTL(p+".ttl", who+": soa.ttl", s.TTL, 1)
	v.checkTTL(p+".negative_ttl", who+": soa.negative_ttl", s.NegativeTTL, 0)
	v.checkTTL(p+".refresh", who+": soa.refresh", s.Refresh, 1)
	v.checkTTL(p+".retry", who+": soa.retry", s.Retry, 1)
	v.checkTTL(p+".expire", who+": soa.expire", s.Expire, 1)
}
