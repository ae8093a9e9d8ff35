package units

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/annotation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func ports(t *testing.T, value string) []annotation.Port {
	t.Helper()
	p, err := annotation.ParsePorts(value)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func allowList(t *testing.T, value string) allow.List {
	t.Helper()
	l, err := allow.Parse(value)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// goldenCases are the unit sets checked against testdata/NAME/ and, when
// systemd-analyze is installed, verified by it.
func goldenCases(t *testing.T, proxy string) map[string][]File {
	t.Helper()
	cases := map[string]interface{ Files() ([]File, error) }{
		"single": Activator{Name: "db", ContainerName: "systemd-db", Ports: ports(t, "5432"), Proxy: proxy},
		"multi": Activator{Name: "web", Suffix: "admin", ContainerName: "web-ctr",
			Ports: ports(t, "127.0.0.1:8080:80,[::1]:8443:443/tcp,53/udp"), Proxy: proxy, ConnectionsMax: 256},
		"idle": Activator{Name: "pg", ContainerName: "pg", Ports: ports(t, "15432:5432"), Proxy: proxy,
			IdleStop: 90 * time.Second, SourcePath: "/home/u/.config/containers/systemd/pg.container"},
		"notify": Activator{Name: "pgn", ContainerName: "pgn", Ports: ports(t, "5432"), Proxy: proxy, AfterReady: true},
		"unix": Activator{Name: "pgu", ContainerName: "pgu", Ports: ports(t, "5432"), Proxy: proxy,
			UnixListen: "/run/user/1001/pgu/.s.PGSQL.5432", SocketGroup: "postgres-clients",
			UnixTarget: "/run/postgresql/.s.PGSQL.5432", ProxyProtocol: "v2",
			ConnIdleTimeout: 10 * time.Minute, KeepAlive: 30 * time.Second},
		"udp-only": Activator{Name: "dns", ContainerName: "dns", Ports: ports(t, "5353/udp"), Proxy: proxy},
		"allow": Activator{Name: "app", ContainerName: "systemd-app", Ports: ports(t, "127.0.0.1:8080:80,5353/udp"), Proxy: proxy,
			IdleStop: 5 * time.Minute, AfterReady: true, Allow: allowList(t, "crossuser, @web uid:1003,10.0.0.0/8")},
		"generated": Activator{Name: "gen", ContainerName: "systemd-gen", Ports: ports(t, "8080"), Proxy: proxy,
			Generated: true, SourcePath: "/etc/containers/systemd/gen.container", IdleStop: 1500 * time.Millisecond},
		"handoff": Activator{Name: "hpg", ContainerName: "hpg", Ports: ports(t, "5432"), Proxy: proxy,
			AfterReady: true, Handoff: true, Generated: true, SourcePath: "/home/u/.config/containers/systemd/hpg.container"},
		"handoff-idle": Activator{Name: "hweb", ContainerName: "systemd-hweb", Ports: ports(t, "8080,5353/udp"), Proxy: proxy,
			Handoff: true, IdleStop: 5 * time.Minute},
		"direct":       Direct{Name: "echo", Ports: ports(t, "127.0.0.1:7777:7")},
		"direct-multi": Direct{Name: "echo2", Ports: ports(t, "7000,7001/udp"), SourcePath: "/x/echo2.container"},
	}
	out := make(map[string][]File)
	for name, c := range cases {
		files, err := c.Files()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = files
	}
	return out
}

// goldenProxy is the bro-proxy path in the golden files.
const goldenProxy = "/usr/local/bin/bro-proxy"

func TestGolden(t *testing.T) {
	for name, files := range goldenCases(t, goldenProxy) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			if *update {
				os.RemoveAll(dir)
				if err := Write(dir, files, false); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					want = append(want, strings.TrimPrefix(p, dir+"/"))
				}
				return nil
			})
			if len(want) != len(files) {
				t.Errorf("rendered %d files; golden dir %s has %d: %q", len(files), dir, len(want), want)
			}
			for _, f := range files {
				golden, err := os.ReadFile(filepath.Join(dir, f.Path))
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if string(golden) != string(f.Data) {
					t.Errorf("%s:\ngot:\n%s\nwant:\n%s", f.Path, f.Data, golden)
				}
			}
		})
	}
}
