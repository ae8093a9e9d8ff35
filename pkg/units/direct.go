package units

import "github.com/brothaman/brothaman-go/pkg/hook"

// Direct describes NAME.socket for direct mode: systemd starts the quadlet's
// own NAME.service on the first connection, and Podman passes the sockets into
// the container (LISTEN_FDS), so no proxy sits in between.
type Direct struct {
	Name       string
	Ports      []hook.Port // only the host side (Listen, Proto) matters
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

// Paths lists the files Files writes, for Remove.
func (d Direct) Paths() []string { return []string{d.Name + ".socket"} }

// Files renders NAME.socket. It returns a *quadlet.NameError for a bad name
// and an error for no ports.
func (d Direct) Files() ([]File, error) {
	if err := d.common().validate(); err != nil {
		return nil, err
	}
	// The container port means nothing here (the container gets the socket
	// itself); name the fd after the host port it listens on.
	ports := make([]hook.Port, len(d.Ports))
	for i, p := range d.Ports {
		p.ContainerPort = p.HostPort
		ports[i] = p
	}
	d.Ports = ports
	data, err := render("direct.socket.tmpl", d)
	if err != nil {
		return nil, err
	}
	return []File{{Path: d.Name + ".socket", Data: data}}, nil
}
