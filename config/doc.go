// Package config turns a meridian YAML file into plain structs: it decodes
// strictly (an unknown key or a wrong type is an error), applies defaults,
// resolves token secrets and static zone records, and validates everything,
// reporting every problem at once as FILE:LINE: message.
//
// It owns the shape of the configuration and nothing else: it starts no
// servers, opens no sockets and keeps no state. The only I/O it does is
// reading the config file itself, zone files and secret files, and looking
// up secret environment variables.
package config
