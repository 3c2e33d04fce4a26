package probe

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzDecodeLocations: any fleet configuration text gives locations or an
// error, never a panic (aliases, deep nesting and wrong kinds included).
func FuzzDecodeLocations(f *testing.F) {
	f.Add([]byte(fleetYAML))
	f.Add([]byte("locations: [paris]\n"))
	f.Add([]byte("a: &a [*a]\nlocations: {x: {sensors: *a}}\n"))
	f.Add([]byte("locations: {x: {sensors: [s], probes: [{name: w, kind: tcp, target: \"10.0.0.1:1\"}]}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var root yaml.Node
		if yaml.Unmarshal(b, &root) != nil {
			return
		}
		if n := mappingValue(&root, "locations"); n != nil {
			locs, err := DecodeLocations(n)
			if err == nil {
				for name, l := range locs {
					if len(l.Sensors) == 0 {
						t.Fatalf("location %q accepted without sensors", name)
					}
				}
			}
		}
	})
}
