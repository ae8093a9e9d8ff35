package units

import (
	"strings"
	"testing"
	"time"
)

func TestActivatorAllow(t *testing.T) {
	base := Activator{Name: "app", ContainerName: "systemd-app", Ports: ports(t, "8080"), Proxy: goldenProxy}
	t.Run("without an allow list: no --allow, no AF_NETLINK, Wants=", func(t *testing.T) {
		files, err := base.Files()
		if err != nil {
			t.Fatal(err)
		}
		svc := string(files[1].Data)
		for _, bad := range []string{"--allow", "AF_NETLINK\n"} {
			if strings.Contains(svc, bad) {
				t.Errorf("service has %q without an allow list", bad)
			}
		}
		if !strings.Contains(svc, "\nWants=app.service\n") {
			t.Errorf("service has no Wants=app.service")
		}
	})
	t.Run("handoff refused", func(t *testing.T) {
		a := base
		a.Handoff, a.Allow = true, allowList(t, "crossuser")
		_, err := a.Files()
		want := "bro.allow cannot be used with bro.mode=handoff: handoff passes the socket into the container and no proxy checks who connects; remove one of them"
		if err == nil || err.Error() != want {
			t.Errorf("Files() = %v; want %s", err, want)
		}
	})
	t.Run("idle stop: BindsTo, not StopWhenUnneeded", func(t *testing.T) {
		a := base
		a.Allow, a.IdleStop = allowList(t, "crossuser"), time.Minute
		files, err := a.Files()
		if err != nil {
			t.Fatal(err)
		}
		var conf string
		for _, f := range files {
			if f.Path == a.IdleStopConf() {
				conf = string(f.Data)
			}
		}
		if !strings.Contains(conf, "\nBindsTo=app-activator.service\n") || strings.Contains(conf, "\nStopWhenUnneeded=") {
			t.Errorf("idle-stop drop-in:\n%s\nwant BindsTo=app-activator.service and no StopWhenUnneeded=", conf)
		}
	})
}
