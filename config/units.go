package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	_ yaml.Unmarshaler = (*Duration)(nil)
	_ yaml.Unmarshaler = (*Percent)(nil)
	_ yaml.Unmarshaler = (*ByteSize)(nil)
)

// UnmarshalYAML reads a Go duration string such as "2s" or "500ms". A bare
// number is refused (except 0): the unit is never implied.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n)
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
			return fmt.Errorf("invalid duration %q: a unit is required, e.g. 2s or 500ms", s)
		}
		return fmt.Errorf("invalid duration %q: use a Go duration such as 2s, 500ms or 1m30s", s)
	}
	*d = Duration(v)
	return nil
}

// String formats d as a Go duration ("2s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a percentage written as "20%", "20" or 20.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n)
	if err != nil {
		return err
	}
	num := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("invalid percentage %q: use a number of percent such as 20%%", s)
	}
	*p = Percent(v)
	return nil
}

// String formats p as "20%".
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%"
}

// Fraction returns p as a share between 0 and 1 (20% → 0.2).
func (p Percent) Fraction() float64 { return float64(p) / 100 }

// byteUnits maps the accepted size suffixes, upper-cased, to their size.
// KB, MB, GB and TB are decimal; KiB, MiB, GiB and TiB binary.
var byteUnits = map[string]int64{
	"":    1,
	"B":   1,
	"KB":  1000,
	"MB":  1000 * 1000,
	"GB":  1000 * 1000 * 1000,
	"TB":  1000 * 1000 * 1000 * 1000,
	"KIB": 1 << 10,
	"MIB": 1 << 20,
	"GIB": 1 << 30,
	"TIB": 1 << 40,
}

// UnmarshalYAML reads a size such as "64KiB", "1MiB", "2KB", "512B" or a
// bare number of bytes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarText(n)
	if err != nil {
		return err
	}
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	unit := strings.ToUpper(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if i == 0 || !ok {
		return 0, fmt.Errorf("invalid size %q: use a whole number with an optional unit B, KB, MB, GB, KiB, MiB or GiB", s)
	}
	v, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return v * mult, nil
}

// String formats b in bytes ("65536B").
func (b ByteSize) String() string { return strconv.FormatInt(int64(b), 10) + "B" }

// scalarText returns the text of a scalar node, refusing lists, mappings
// and null.
func scalarText(n *yaml.Node) (string, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("expected a single value, got %s", describe(n))
	}
	if n.ShortTag() == nullTag {
		return "", errors.New("expected a value, got null")
	}
	return n.Value, nil
}
