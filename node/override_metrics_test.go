package node

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegionOverrideMetric(t *testing.T) {
	tn := startNode(t, "")
	want := func(region, state string) string {
		var b strings.Builder
		for _, s := range []string{"auto", "down", "up"} {
			v := "0"
			if s == state {
				v = "1"
			}
			b.WriteString(`meridian_region_override{region="` + region + `",state="` + s + `"} ` + v + "\n")
		}
		return b.String()
	}
	head := "# HELP meridian_region_override Operator override of a region's health: 1 for the state in force (auto, up or down), 0 for the others.\n# TYPE meridian_region_override gauge\n"
	if err := testutil.GatherAndCompare(tn.Registry(), strings.NewReader(head+want("ap-south", "auto")+want("eu-west", "auto")+want("us-east", "auto")), "meridian_region_override"); err != nil {
		t.Errorf("before any override: %v", err)
	}
	if _, err := tn.SetOverride("eu-west", "down", Actor{Token: "t", Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.SetOverride("ap-south", "up", Actor{Token: "t", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(tn.Registry(), strings.NewReader(head+want("ap-south", "up")+want("eu-west", "down")+want("us-east", "auto")), "meridian_region_override"); err != nil {
		t.Errorf("after overrides: %v", err)
	}
	if _, err := tn.SetOverride("eu-west", "auto", Actor{Token: "t", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(tn.Registry(), strings.NewReader(head+want("ap-south", "up")+want("eu-west", "auto")+want("us-east", "auto")), "meridian_region_override"); err != nil {
		t.Errorf("back to auto: %v", err)
	}
}
