package config

// AccessLog configures the proxy's per-request access log: one JSON line
// per proxied request. Off unless path is set.
type AccessLog struct {
	// Path is the file the lines are appended to, relative to the config
	// file's folder; "-" is standard output; "" (default) logs nothing.
	// A reload (SIGHUP) reopens it, for log rotation.
	Path string `yaml:"path"`
}

// AccessLogStdout is the access_log.path that writes to standard output.
const AccessLogStdout = "-"

// accessLog resolves access_log.path against the config's folder.
func (r *resolver) accessLog(c *Config) {
	if c.AccessLog.Path != AccessLogStdout {
		c.AccessLog.Path = r.path(c.AccessLog.Path)
	}
}
