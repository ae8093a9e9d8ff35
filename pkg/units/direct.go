package units

import (
	"path/filepath"

	"github.com/brothaman/brothaman-go/pkg/annotation"
)

// Direct describes NAME.socket for direct mode: systemd starts the quadlet's
// own NAME.service on the first connection, and Podman passes the sockets into
// the container (LISTEN_FDS), so no proxy sits in between.
type Direct struct {
	Name       string
	Ports      []annotation.Port // only the host side (Listen, Proto) matters
	SourcePath string
	Generated  bool
}

func (d Direct) common() common {
	return common(d)
}

func (d Direct) Marker() string { return d.common().Marker() }
func (d Direct) HasTCP() bool   { return d.common().HasTCP() }

// RemoveCommand is what the header tells the user to run.
func (d Direct) RemoveCommand() string { return "bro-activate-direct --remove " + d.Name }

// StartLimitConf is the path of the drop-in that lifts NAME.service's start
// limit: the socket starts the quadlet's unit itself, once per client while
// it is down, and the default limit would make the socket fail.
func (d Direct) StartLimitConf() string {
	return filepath.Join(d.Name+".service.d", "50-"+d.Name+"-socket-start-limit.conf")
}

// Paths lists the files Files writes, for Remove.
func (d Direct) Paths() []string { return []string{d.Name + ".socket", d.StartLimitConf()} }

// Files renders NAME.socket and the start-limit drop-in. It returns a *quadlet.NameError for a bad name
// and an error for no ports.
func (d Direct) Files() ([]File, error) {
	if err := d.common().validate(); err != nil {
		return nil, err
	}
	// The container port means nothing here (the container gets the socket
	// itself); name the fd after the host port it listens on.
	ports := make([]annotation.Port, len(d.Ports))
	for i, p := range d.Ports {
		p.ContainerPort = p.HostPort
		ports[i] = p
	}
	d.Ports = ports
	var files []File
	for _, k := range []struct{ path, tmpl string }{
		{d.Name + ".socket", "direct.socket.tmpl"},
		{d.StartLimitConf(), "direct-start-limit.conf.tmpl"},
	} {
		data, err := render(k.tmpl, d)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: k.path, Data: data})
	}
	return files, nil
}
