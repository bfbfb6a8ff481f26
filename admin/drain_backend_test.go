package admin

import (
	"github.com/meridian-edge/meridian/node"
)

func (f *fakeBackend) SetDrained(drain bool, who node.Actor) (node.DrainView, error) {
	f.actor = who
	return node.DrainView{Node: "fake", Drained: drain}, f.err
}
