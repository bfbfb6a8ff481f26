package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// resolver does the I/O of Parse: it reads token secrets from the
// environment or files and static zone records from zone files.
type resolver struct {
	errs *errorList
	pos  *positions
	dir  string // folder of the config file; the files it names are relative to it
}

// path resolves a file named in the config against the config's folder.
func (r *resolver) path(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(r.dir, name)
}

// paths makes the files and folders the config names relative to the
// config's folder, as zone files and secret files are: the GeoIP database,
// certificates and keys, the ACME roots and storage, and the state file.
func (r *resolver) paths(c *Config) {
	c.GeoIP.Database = r.path(c.GeoIP.Database)
	for i := range c.TLS.Certificates {
		cert := &c.TLS.Certificates[i]
		cert.CertFile, cert.KeyFile = r.path(cert.CertFile), r.path(cert.KeyFile)
	}
	if a := c.TLS.ACME; a != nil {
		a.CARoot, a.Storage = r.path(a.CARoot), r.path(a.Storage)
	}
	c.State.Path = r.path(c.State.Path)
}

// secrets fills Token.Secret from secret_env or secret_file. A token with
// no source or with both is left for the validator to report.
func (r *resolver) secrets(c *Config) {
	for i := range c.Admin.Tokens {
		t := &c.Admin.Tokens[i]
		p := itemPath("admin.tokens", i)
		switch {
		case t.SecretEnv != "" && t.SecretFile != "":
			continue
		case t.SecretEnv != "":
			line := r.pos.line(p + ".secret_env")
			v, ok := os.LookupEnv(t.SecretEnv)
			switch {
			case !ok:
				r.errs.add(line, "%s: environment variable %s is not set", tokenSubject(t, p), t.SecretEnv)
			case strings.TrimSpace(v) == "":
				r.errs.add(line, "%s: environment variable %s is empty", tokenSubject(t, p), t.SecretEnv)
			default:
				t.Secret = v
			}
		case t.SecretFile != "":
			line := r.pos.line(p + ".secret_file")
			t.SecretFile = r.path(t.SecretFile)
			data, err := readFile(t.SecretFile, maxSecretFile)
			if err != nil {
				r.errs.add(line, "%s: reading secret file: %v", tokenSubject(t, p), err)
				continue
			}
			v := strings.TrimRight(string(data), " \t\r\n")
			if v == "" {
				r.errs.add(line, "%s: secret file %s is empty", tokenSubject(t, p), t.SecretFile)
				continue
			}
			t.Secret = v
		}
	}
}

func tokenSubject(t *Token, path string) string {
	if t.Name == "" {
		return path
	}
	return "token " + quote(t.Name)
}

// Limits on the files the config names, so that a wrong path (a device, a
// log file) fails cleanly instead of filling memory.
const (
	maxSecretFile = 64 << 10
	maxZoneFile   = 64 << 20
)

// readFile reads the regular file at path, refusing one larger than limit.
func readFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	_ = f.Close() // read-only: a failed close loses nothing
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
