// Package version reports what build of paygate is running: the module
// version, the VCS revision it was built from and the Go version, for
// `paygate version`, the paygate_build_info metric and the status page.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time when the build has no module or VCS information (a
// container build without .git), for example:
//
//	go build -ldflags "-X github.com/paygate/paygate/version.version=v1.2.0 \
//	  -X github.com/paygate/paygate/version.revision=$(git rev-parse HEAD)" ./cmd/paygate
//
// Values set this way win over the build information.
var (
	version  string
	revision string
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`    // module version; "devel" for a build from a source tree
	Revision  string `json:"revision"`   // VCS revision, "+dirty" when the tree had changes; "unknown" when absent
	GoVersion string `json:"go_version"` // the Go toolchain that built it
}

// Get reads the build information of the running binary.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok, version, revision)
}

// fromBuildInfo is Get for a given build information and link-time values.
func fromBuildInfo(bi *debug.BuildInfo, ok bool, linkedVersion, linkedRevision string) Info {
	info := Info{Version: "devel", Revision: "unknown", GoVersion: runtime.Version()}
	if ok && bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		var rev string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			info.Revision = rev
			if dirty {
				info.Revision += "+dirty"
			}
		}
	}
	if v := strings.TrimSpace(linkedVersion); v != "" {
		info.Version = v
	}
	if r := strings.TrimSpace(linkedRevision); r != "" {
		info.Revision = r
	}
	return info
}

// String is the one-line form `paygate version` prints.
func (i Info) String() string {
	return "paygate " + i.Version + " (revision " + i.Revision + ", " + i.GoVersion + ")"
}
