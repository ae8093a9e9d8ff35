package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allowRule ends every grammar error. The tests name root: a user that
// exists on every host, so bro-activate resolves it.
const allowRule = "; want NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces"

func TestActivateAllow(t *testing.T) {
	const q = "[Container]\nImage=x\nAnnotation=bro.activate=8080\n"
	for _, tc := range []struct {
		name, quadlet string
		args          []string
		want          string // in ExecStart; "" for none
		err           string // the whole error; "" for none
	}{
		{name: "none", quadlet: q, want: ""},
		{name: "annotation", quadlet: q + "Annotation=\"bro.allow=root uid:1003\"\n", want: " --allow root,uid:1003 "},
		{name: "flag", quadlet: q, args: []string{"--allow", "root,10.0.0.0/8"}, want: " --allow root,10.0.0.0/8 "},
		{name: "flag over annotation", quadlet: q + "Annotation=bro.allow=uid:7\n", args: []string{"--allow", "uid:8"}, want: " --allow uid:8 "},
		{name: "bad flag", quadlet: q, args: []string{"--allow", "root,,x"},
			err: `--allow: invalid bro.allow="root,,x": entry "": empty entry` + allowRule},
		{name: "bad annotation", quadlet: q + "Annotation=bro.allow=@\n",
			err: `QDIR/db.container: invalid bro.allow="@": "" is not a group name` + allowRule},
		{name: "unknown user", quadlet: q, args: []string{"--allow", "root,nosuchuser-bro"},
			err: `--allow: invalid bro.allow="root,nosuchuser-bro": no user named "nosuchuser-bro"; want users and groups of this host (NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces)`},
		{name: "handoff", quadlet: q + "Annotation=bro.allow=root\nAnnotation=bro.mode=handoff\n",
			err: `QDIR/db.container: bro.allow cannot be used with bro.mode=handoff: handoff passes the socket into the container and no proxy checks who connects; remove one of them`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qdir, udir := setup(t, tc.quadlet)
			_, err := run(t, false, append([]string{"--unit-dir", udir, "--proxy", "/usr/bin/bro-proxy", "db"}, tc.args...)...)
			if tc.err != "" {
				want := strings.ReplaceAll(tc.err, "QDIR", qdir)
				if err == nil || err.Error() != want {
					t.Errorf("error = %v;\nwant %s", err, want)
				}
				if entries, _ := os.ReadDir(udir); len(entries) != 0 {
					t.Errorf("a refused allow list wrote %d files; want none", len(entries))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			svc, _ := os.ReadFile(filepath.Join(udir, "db-activator.service"))
			has := strings.Contains(string(svc), " --allow ")
			if tc.want == "" && has || tc.want != "" && !strings.Contains(string(svc), tc.want) {
				t.Errorf("service: want %q in ExecStart:\n%s", tc.want, svc)
			}
			if netlink := strings.Contains(string(svc), "AF_NETLINK\n"); netlink != (tc.want != "") {
				t.Errorf("AF_NETLINK in RestrictAddressFamilies= is %v; want %v", netlink, tc.want != "")
			}
		})
	}
}

func TestAllowCommaWarning(t *testing.T) {
	_, udir := setup(t, "[Container]\nImage=x\nAnnotation=bro.activate=8080\nAnnotation=bro.allow=root,uid:5\n")
	o, err := parseOptions([]string{"--unit-dir", udir, "--proxy", "/usr/bin/bro-proxy", "db"}, false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if err := activate(o, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := `Annotation="bro.allow=root uid:5"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q; want a warning suggesting %s", stderr.String(), want)
	}
}

func TestDirectRefusesAllow(t *testing.T) {
	qdir, udir := setup(t, "[Container]\nImage=x\nAnnotation=bro.activate=8080\nAnnotation=bro.allow=root\n")
	_, err := run(t, true, "--unit-dir", udir, "db")
	want := qdir + "/db.container: bro.allow cannot be used with bro.mode=direct: the container takes systemd's socket itself and no proxy checks who connects; remove one of them"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v; want %s", err, want)
	}
}

func TestGeneratorAllow(t *testing.T) {
	qdir, out := t.TempDir(), t.TempDir()
	for name, text := range map[string]string{
		"ok.container":  "[Container]\nImage=x\nAnnotation=bro.activate=8080\nAnnotation=bro.allow=root\n",
		"bad.container": "[Container]\nImage=x\nAnnotation=bro.activate=8081\nAnnotation=bro.allow=uid:x\n",
	} {
		if err := os.WriteFile(filepath.Join(qdir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	generate(out, []string{qdir}, t.TempDir(), "/usr/local/bin/bro-proxy", &log)
	if want := "bro-generator: skipping " + qdir + `/bad.container: invalid bro.allow="uid:x": uid "x" is not a number` + allowRule + "\n"; log.String() != want {
		t.Errorf("log =\n%s\nwant\n%s", log.String(), want)
	}
	if _, err := os.Stat(filepath.Join(out, "bad-activator.service")); err == nil {
		t.Errorf("the generator wrote units for a bad bro.allow")
	}
	svc, err := os.ReadFile(filepath.Join(out, "ok-activator.service"))
	if err != nil || !strings.Contains(string(svc), " --allow root ") {
		t.Errorf("ok-activator.service = %v; want --allow root in:\n%s", err, svc)
	}
}
