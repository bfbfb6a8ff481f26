package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses the configuration file at path; see Parse. A file
// that cannot be read is a plain error; every problem inside it is reported
// in an *Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, read from file, into a Config. Decoding is strict: an
// unknown key, a repeated key or a value of the wrong type is an error.
// Parse then normalizes names (lower case, no final dot), applies the
// defaults, resolves token secrets from their environment variables or
// files, reads and parses zone files (relative to file's folder) and inline
// records into Zone.RRs, and validates the result.
//
// When anything is wrong Parse returns a nil Config and an *Errors holding
// every problem found, each as FILE:LINE: message.
func Parse(file string, data []byte) (*Config, error) {
	errs := &errorList{file: file}
	doc, ok := parseYAML(data, errs)
	if !ok {
		return nil, errs.err()
	}
	cfg := &Config{File: file}
	pos := newPositions()
	d := &decoder{errs: errs, pos: pos}
	d.decode(doc, reflect.ValueOf(cfg).Elem(), "")
	if d.aborted {
		return nil, errs.err()
	}

	normalize(cfg)
	applyDefaults(cfg, pos, os.Hostname)
	r := &resolver{errs: errs, pos: pos, dir: filepath.Dir(file)}
	r.paths(cfg)
	r.secrets(cfg)
	r.bgpSecrets(cfg)
	r.etcdSecrets(cfg)
	r.zones(cfg)
	r.accessLog(cfg)
	v := &validator{errs: errs, pos: pos, fromFile: true}
	v.config(cfg)

	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks c as Parse leaves it (normalized, defaults applied) and
// returns an *Errors with every problem, or nil. It does no I/O: it neither
// resolves secrets nor reads zone files. Errors carry no line numbers unless
// c came from Parse, which already ran these checks.
func (c *Config) Validate() error {
	errs := &errorList{file: c.File}
	v := &validator{errs: errs, pos: newPositions()}
	v.config(c)
	return errs.err()
}

var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads the single document in data and returns its top node.
func parseYAML(data []byte, errs *errorList) (top *yaml.Node, ok bool) {
	defer func() {
		// The YAML parser is not ours; whatever it does with hostile
		// input must not take the process down.
		if r := recover(); r != nil {
			errs.add(1, "invalid YAML: %v", r)
			top, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(1, "the config is empty")
		} else {
			addYAMLError(errs, err)
		}
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			addYAMLError(errs, err)
		} else {
			errs.add(max(extra.Line, 1), "the file holds more than one YAML document")
		}
		return nil, false
	}
	if len(root.Content) == 0 || root.Content[0].ShortTag() == nullTag {
		errs.add(max(root.Line, 1), "the config is empty")
		return nil, false
	}
	return root.Content[0], true
}

func addYAMLError(errs *errorList, err error) {
	if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		errs.add(max(line, 1), "invalid YAML: %s", m[2])
		return
	}
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	errs.add(1, "invalid YAML: %s", msg)
}
