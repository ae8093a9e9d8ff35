package proxy

import (
	"net"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Who may connect (--allow): Proxy.Allow is asked about every client before
// anything is done for it. A refused TCP client is reset (SO_LINGER 0: it
// sees ECONNRESET, not a clean end it could take for an answer), a unix one
// closed; the datagrams of a refused UDP source are dropped. The refusal is
// logged once per few clients (ratelog.go), with the uid and the rule: a
// flood of refused clients costs a lookup each and a few lines a window.

// admitStream checks the client accepted on fd (from sa), and resets and
// closes it if it is refused.
func (p *Proxy) admitStream(fd int, sa unix.Sockaddr) bool {
	v := p.Allow.Stream(fd)
	if v.Allowed {
		if p.Log.Logger.IsLevelEnabled(logrus.DebugLevel) {
			p.Log.WithFields(logrus.Fields{"conn": sockaddrAddr(sa).String(), "uid": v.UID, "by": v.By}).Debug("client allowed")
		}
		return true
	}
	if isTCP(sa) {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	unix.Close(fd)
	p.refusedLog(v, sockaddrAddr(sa).String(), "")
	return false
}

// refusedLog counts and logs one refused client: at warning level, a few per
// window; a client that left before the check at debug level only.
func (p *Proxy) refusedLog(v allow.Verdict, conn, proto string) {
	p.refused.Add(1)
	e := p.Log.WithFields(logrus.Fields{"conn": conn, "rule": p.Allow.Rule()})
	if v.UID >= 0 {
		e = e.WithField("uid", v.UID)
	}
	if proto != "" {
		e = e.WithField("proto", proto)
	}
	switch {
	case v.Gone:
		e.Debug("client closed before the allow check; dropped")
	case v.Err != nil:
		repeatLog.log("refused-error", e.WithError(v.Err), logrus.WarnLevel, "client refused: "+v.Reason+" (fail closed)")
	default:
		repeatLog.log("refused", e, logrus.WarnLevel, "client refused: "+v.Reason)
	}
}

// admitDatagram checks a UDP source whose datagram arrived on l.
func (p *Proxy) admitDatagram(l Listener, client net.Addr) bool {
	ua, ok := client.(*net.UDPAddr)
	la, lok := l.pc.LocalAddr().(*net.UDPAddr)
	if !ok || !lok {
		return false
	}
	v := p.Allow.Datagram(la.AddrPort(), ua.AddrPort())
	if v.Allowed {
		return true
	}
	p.refusedLog(v, client.String(), "udp")
	return false
}
